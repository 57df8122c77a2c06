r"""Where does transferability stop? Probe and fine-tune at every cut point, in one sweep (preset).

  python scripts/compare.py --config configs/cut_points.py --workdir runs/cut_points_digits
  python scripts/compare.py --config configs/cut_points.py:cifar10 --workdir runs/cut_points_cifar10 \
      --config.data.path=../shared/data/cifar10_subset_train.npz
  # your own data and backbone (root/<class>/<image>; test and val held out):
  python scripts/compare.py --config configs/cut_points.py:digits,resnet50 --workdir runs/cut_points_mine \
      --config.data.name=folder --config.data.path=/data/my_images

For each cut point ``c`` of ``stem, stage1..N, pre_logits`` (Yosinski et al., 2014):

* the probe: Kornblith et al.'s linear probe (configs/probe_digits.py) of the
  pooled output of ``c``, at 224 px (``probe`` block, ``features=("all",)``);
* the fine-tune: ``c`` and everything below it frozen (``freeze_first_k``), the
  rest trained with configs/finetune_lite.py's recipe at 160 px
  (``ft_frozen_to_<c>``; ``ft_frozen_to_none`` trains everything, and at
  ``pre_logits`` the whole backbone is frozen: the trainer's linear probe).

Both halves train on the same images: digits all 1,132 (3 epochs), the CIFAR-10
subset 200 per class (1 epoch; the probe also on seeds 1 and 2 of that size). Writes probe_results.*,
results.* and cut_points.{md,csv,png} (accuracy against the cut point, probe
and fine-tune side by side). The argument is ``<dataset>[,<model>]``: the
cut points are read from the model's parameter paths.
"""

import jax
import jax.numpy as jnp
import ml_collections

from configs import compare_digits, finetune_lite, probe_digits
from tl_jax import models, partition
from tl_jax.freezing import strategies


def cut_units(model: str) -> list[str]:
  """``stem, stage1..N`` of ``model``, from its parameter paths."""
  shapes = jax.eval_shape(lambda: models.create(model, 10).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8)))
  return [u for u in strategies.backbone_units(partition.flatten(shapes["params"]))
          if u not in strategies.TOP_UNITS]


def get_config(arg: str = "digits") -> ml_collections.ConfigDict:
  dataset, _, model = arg.partition(",")
  model = model or "efficientnet_lite0"
  c = finetune_lite.base(dataset)
  c.model.name = model
  recipe = finetune_lite.TRIALS[finetune_lite.CHOSEN]
  ft = {"ft_frozen_to_none": recipe}
  for k, unit in enumerate(cut_units(model), start=1):
    ft[f"ft_frozen_to_{unit}"] = dict(recipe, param_groups=dict(
        recipe["param_groups"], preset=dict(name="freeze_first_k", k=k)))
  ft["ft_frozen_to_pre_logits"] = dict(  # compare_digits' linear probe on cached features, at 160 px
      compare_digits.strategies()["linear_probe"], data=dict(image_size=finetune_lite.IMAGE_SIZE))
  # digits: all 1,132 training images, 3 epochs; CIFAR-10 subset: 200 per class, 1 epoch (CPU budget)
  per_class, epochs = (0, 3) if dataset == "digits" else (200, 1)
  c.compare = dict(
      strategies=ft, images_per_class=(per_class,), num_epochs=(epochs,),
      evals_per_run=1, seeds=(0,), logreg=False, cut_points=True,
      title=f"{model}, {dataset}: probe per cut point (224 px), fine-tune frozen up to it ({finetune_lite.IMAGE_SIZE} px)")
  c.init.update(dict(path="", source=""))
  c.data.image_size = 224  # the probe's; every fine-tune sets its own
  c.probe = probe_digits.probe(models=(model,), top1={}, features=("all",), images_per_class=(per_class,),
                               sklearn=False, title=f"{model}: linear probe per cut point, {dataset} (224 px)")
  c.lock()
  return c
