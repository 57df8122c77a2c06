r"""Where does transferability stop? A linear probe on the pooled output of every stage (preset).

  python scripts/compare.py --config configs/probe_stages.py --workdir runs/probe_stages_digits

EfficientNet-Lite0 (ImageNet weights) at 224 px on digits: the Kornblith et
al. (2019) probe of configs/probe_digits.py on the global-average-pooled
``stem``, ``stage1..7`` and ``pre_logits`` (Yosinski et al., 2014: how far up
features stay general). On your own data and model: the same command with
``--config.data.name=folder --config.data.path=/data/my_images`` (``folder``:
``root/<class>/<image>``; test and val held out by ``data.test_fraction`` /
``data.val_fraction``) and, for another backbone,
``--config.probe.models='("resnet50",)'`` (docs/studies.md, "Linear probe by the
Kornblith et al. (2019) protocol"). Writes probe_results.md and
probe_vs_cut_point.png. Expected test accuracy at 10 images per class (3
seeds): stem ~67%, stage4 ~82%, stage7 ~91%, pre_logits ~88%. Results:
BENCHMARKS.md, "Linear probe per stage".
"""

import ml_collections

from configs import probe_digits


def get_config() -> ml_collections.ConfigDict:
  c = probe_digits.get_config()
  c.unlock()
  c.probe.models = ("efficientnet_lite0",)
  c.probe.features = ("all",)
  c.probe.sklearn = False  # the scikit-learn check runs on pre_logits (configs/probe_digits.py)
  c.probe.title = "Lite0 linear probe per stage, digits (224 px)"
  c.lock()
  return c
