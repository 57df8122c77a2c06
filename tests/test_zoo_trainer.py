"""One short from-scratch run of the real trainer per backbone family (digits at 16-32 px)."""

import json
import math
import os

import pytest

from tl_jax import trainer


@pytest.mark.parametrize("name, size", [("resnet18", 16), ("vgg11_bn", 32), ("mobilenet_v2", 16),
                                        ("efficientnet_lite0", 16)])
def test_family_trains(name, size, quickstart_config, tmp_path):
  cfg = quickstart_config
  cfg.unlock()
  cfg.model.name = name
  cfg.init.pretrained = False  # the families' weights are tested in tests/weights
  cfg.data.image_size = size  # VGG's five 2x2 pools need 32 px
  cfg.data.test_fraction = 0.8  # a small training set keeps the run short
  cfg.param_groups = {"rules": ((".*", "all"),), "all": {"lr_mult": 1.0, "bn": "batch"}}
  cfg.optim.lr = 3e-3
  cfg.train.num_epochs = 2
  cfg.train.batch_size = 32
  cfg.train.eval_batch_size = 512
  workdir = str(tmp_path / name)
  summary = trainer.train_and_evaluate(cfg, workdir)
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["epoch"] for r in records] == [1, 2]
  assert all(math.isfinite(r["train_loss"]) for r in records)
  # From scratch, 20 steps: the loss must fall and the model must beat chance (10%).
  assert records[1]["train_loss"] < records[0]["train_loss"], records
  assert summary["final_test_accuracy"] > 0.2, summary
