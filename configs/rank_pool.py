r"""Does a transferability score predict fine-tuned accuracy? Eight source models per target.

``scripts/rank_study.py pool --workdir runs/rank_pool`` runs (or reads back) these four sweeps,
then scores every start and writes the rank agreement; each sweep also runs alone:

  python scripts/compare.py --config configs/rank_pool.py:sources_cifar10 --workdir runs/rank_pool/sources_cifar10
  python scripts/compare.py --config configs/rank_pool.py:sources_digits --workdir runs/rank_pool/sources_digits
  python scripts/compare.py --config configs/rank_pool.py:digits,runs/rank_pool --workdir runs/rank_pool/digits
  python scripts/compare.py --config configs/rank_pool.py:cifar10,runs/rank_pool --workdir runs/rank_pool/cifar10

The pool of issue 28 item 4(c), built from what is available offline, the same eight candidates
for each target dataset (digits and the CIFAR-10 subset, both at 32 px: what fits a 2-core CPU):

* ``lite0/1/2_imagenet``: EfficientNet-Lite0/1/2 with their real ImageNet weights;
* ``lite0_random``: Lite0 at its seeded random initialisation (a run of length 0);
* ``<other>_scratch_short/medium/long``: Lite0 trained from scratch on the *other* dataset for
  three lengths (``configs/scratch_cifar10.py``'s chosen recipe);
* ``<other>_imagenet_ft``: Lite0's ImageNet weights fine-tuned on the other dataset.

``sources(dataset)`` is the compare sweep that trains the last four on ``dataset``;
``get_config(target)`` the sweep that fine-tunes all eight on ``target`` with one recipe for all
(``configs/finetune_lite.py``'s: every layer trained, backbone at 0.3x the head's 1e-3,
BatchNorm on the start's running statistics), whose test accuracies the scores are held against.
Expected (32 px, one seed): fine-tuned test accuracy 41-99% on digits and 11-63% on CIFAR across the
eight starts; Kendall tau over them, NCE 0.76 / 0.71, LogME 0.55 / 0.36 (BENCHMARKS.md, "Choosing
before training"). A source's start is its best checkpoint written as a weight file (``SOURCE_FILE``) by
``scripts/rank_study.py``; its own head is kept there for LEEP and NCE.
"""

import ml_collections

from configs import finetune_lite, scratch_cifar10

IMAGE_SIZE = 32
TARGET_EPOCHS = {"digits": 3, "cifar10": 1}  # configs/finetune_lite.py's: ~105 and ~115 steps of 32
SCRATCH_EPOCHS = {"cifar10": (1, 2, 5), "digits": (2, 5, 12)}  # short, medium, long
SOURCE_FILE = "{root}/sources/{name}.msgpack"
IMAGENET = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
LENGTHS = ("short", "medium", "long")


def other(dataset: str) -> str:
  return {"digits": "cifar10", "cifar10": "digits"}[dataset]


def _base(dataset: str, epochs: int) -> ml_collections.ConfigDict:
  c = finetune_lite.base(dataset)
  c.data.image_size = IMAGE_SIZE
  c.train.update(dict(cache_features=False, compilation_cache_dir="~/.cache/tl_jax/jax_cache"))
  c.compare = dict(strategies={}, images_per_class=(0,), num_epochs=(epochs,), evals_per_run=1, logreg=False,
                   title="")
  return c


def sources(dataset: str) -> ml_collections.ConfigDict:
  """The sweep that trains the four Lite0 source runs on ``dataset``."""
  c = _base(dataset, 1)
  scratch = scratch_cifar10.TRIALS[scratch_cifar10.CHOSEN]
  c.compare.strategies = {
      **{f"scratch_{n}": dict(scratch, epochs_mult=e) for n, e in zip(LENGTHS, SCRATCH_EPOCHS[dataset])},
      "imagenet_ft": dict(finetune_lite.TRIALS[finetune_lite.CHOSEN], data=dict(image_size=IMAGE_SIZE),
                          epochs_mult=TARGET_EPOCHS[dataset]),
  }
  c.compare.title = f"rank pool: Lite0 source runs on {dataset} ({IMAGE_SIZE} px)"
  c.lock()
  return c


def candidates(target: str, root: str) -> dict[str, tuple[str, str]]:
  """``{candidate: (model, weight file or "" for the model's ImageNet weights)}`` for ``target``."""
  src = other(target)
  pool = {f"{m.removeprefix('efficientnet_')}_imagenet": (m, "") for m in IMAGENET}
  pool["lite0_random"] = (IMAGENET[0], SOURCE_FILE.format(root=root, name="lite0_random"))
  for s in (*(f"scratch_{n}" for n in LENGTHS), "imagenet_ft"):
    pool[f"{src}_{s}"] = (IMAGENET[0], SOURCE_FILE.format(root=root, name=f"{src}_{s}"))
  return pool


def get_config(arg: str = "digits,runs/rank_pool") -> ml_collections.ConfigDict:
  """``arg``: ``<target>,<root>``: the eight candidates fine-tuned on ``target`` (digits or cifar10);
  ``sources_<dataset>``: the four source runs trained on ``dataset`` (``sources``)."""
  if arg.startswith("sources_"):
    return sources(arg.removeprefix("sources_"))
  target, root = (arg.split(",") + ["runs/rank_pool"])[:2]
  c = _base(target, TARGET_EPOCHS[target])
  recipe = dict(finetune_lite.TRIALS[finetune_lite.CHOSEN], data=dict(image_size=IMAGE_SIZE))
  c.compare.strategies = {name: dict(recipe, model=dict(name=model), init=dict(path=path))
                          for name, (model, path) in candidates(target, root).items()}
  c.compare.title = f"rank pool: eight starts fine-tuned on {target} ({IMAGE_SIZE} px)"
  c.lock()
  return c
