"""A tiny real run for fault-injection tests (tests/test_guard.py, test_resume.py, ...).

256 digits (an .npz given as data.path) at 16 px; a linear probe on a random
EfficientNet-Lite0: the head trains on cached features, so steps are quick and
one forward pass compiles. 3 epochs of 4 steps.

  python scripts/train.py --config tests/tiny_config.py --config.data.path=digits256.npz --workdir W
"""

import importlib.util
import os


def get_config():
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "quickstart.py")
  spec = importlib.util.spec_from_file_location("quickstart", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.unlock()
  c.data.update(name="npz", image_size=16, test_fraction=0.25, val_fraction=0.2)
  c.init.pretrained = False
  c.model.dropout_rate = 0.0
  c.param_groups = dict(preset=dict(name="linear_probe"), head=dict(lr_mult=1.0),
                        backbone=dict(lr_mult=0.1, bn="running"))
  c.optim.lr = 3e-2
  c.train.update(batch_size=32, eval_batch_size=64, num_epochs=3, log_every_steps=2, keep_checkpoints=2)
  c.lock()
  return c
