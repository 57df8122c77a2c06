"""Checkpoint averaging: the mean of a tiny run's last checkpoints as a new evaluable run;
BatchNorm statistics averaged, or recomputed against a hand computation of batch means/variances."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tl_jax.evaluate import averaging

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


class _Net(nn.Module):
  """Two BatchNorms of different momenta around a dense layer; the second optionally frozen."""
  frozen: bool = False

  @nn.compact
  def __call__(self, x, train=False):
    x = x.reshape(len(x), -1).astype(jnp.float32) / 255.0
    x = nn.BatchNorm(momentum=0.9, use_running_average=not train, name="bn1")(x)
    h = nn.Dense(5, name="dense")(x)
    out = nn.BatchNorm(momentum=0.999, use_running_average=self.frozen or not train, name="bn2")(h)
    return out, None


@pytest.mark.parametrize("frozen", [False, True])
def test_recomputed_statistics_are_the_mean_of_batch_statistics(frozen):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 2, 2, 3), dtype=np.uint8)
  net = _Net(frozen)
  variables = net.init(jax.random.key(0), jnp.asarray(images[:8]))
  stats = jax.tree.map(lambda s: s + 0.3, variables["batch_stats"])  # not the init values
  got = averaging.recompute_batch_stats(net.apply, variables["params"], stats, images, 8, num_batches=4)
  x = images[:32].reshape(4, 8, -1).astype(np.float64) / 255.0
  np.testing.assert_allclose(got["bn1"]["mean"], x.mean(1).mean(0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(got["bn1"]["var"], x.var(1).mean(0), rtol=1e-4, atol=1e-5)
  if frozen:  # a frozen layer keeps the statistics it was given
    np.testing.assert_array_equal(got["bn2"]["mean"], stats["bn2"]["mean"])
    np.testing.assert_array_equal(got["bn2"]["var"], stats["bn2"]["var"])
  else:  # bn2 sees the dense layer's outputs of bn1 normalised with each batch's own statistics
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    s = variables["params"]["bn1"]
    z = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * np.asarray(s["scale"]) \
        + np.asarray(s["bias"])
    h = z @ p["dense"]["kernel"] + p["dense"]["bias"]
    # momentum 0.999: two passes recover the batch statistic to float32 cancellation (~1e-3 relative)
    np.testing.assert_allclose(got["bn2"]["mean"], h.mean(1).mean(0), rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(got["bn2"]["var"], h.var(1).mean(0), rtol=5e-3, atol=5e-3)


def test_mean_tree_and_structure_check():
  a = {"w": np.ones(3, np.float32), "n": {"v": np.zeros(2, np.float32)}}
  b = {"w": 3 * np.ones(3, np.float32), "n": {"v": np.ones(2, np.float32)}}
  m = averaging.mean_tree([a, b])
  np.testing.assert_allclose(m["w"], 2.0)
  np.testing.assert_allclose(m["n"]["v"], 0.5)
  with pytest.raises(ValueError, match="cannot be averaged"):
    averaging.mean_tree([a, {"w": a["w"]}])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  from tests import tiny
  from tl_jax.train import trainer
  tmp = tmp_path_factory.mktemp("averaging_run")
  cfg = tiny.config(tiny.write_npz(tmp / "digits.npz"), **{"train.compilation_cache_dir": "",
                                                           "train.keep_checkpoints": 3})
  workdir = str(tmp / "run")
  trainer.train_and_evaluate(cfg, workdir)
  return workdir, tmp


@pytest.mark.parametrize("batch_norm", ["average", "recompute"])
def test_average_last_checkpoints_into_an_evaluable_run(tiny_run, batch_norm):
  from tl_jax.evaluate import evaluation
  from tl_jax.train import checkpoint
  workdir, tmp = tiny_run
  verified = checkpoint.Checkpoints(workdir).steps()
  assert len(verified) >= 2
  out = str(tmp / f"avg_{batch_norm}")
  r = averaging.average(workdir, out, last=2, batch_norm=batch_norm, num_batches=2)
  assert r["steps"] == verified[-2:] and r["step"] == verified[-1]
  sources = [evaluation.restore(workdir, s).state for s in verified[-2:]]
  avg = evaluation.restore(out, "latest").state
  for got, *src in zip(jax.tree.leaves(avg.params), *(jax.tree.leaves(s.params) for s in sources)):
    np.testing.assert_allclose(got, np.mean([np.asarray(x, np.float64) for x in src], 0), rtol=1e-6, atol=1e-7)
  # the tiny run's backbone BatchNorms are frozen (running statistics): recomputing keeps the average
  for got, *src in zip(jax.tree.leaves(avg.batch_stats), *(jax.tree.leaves(s.batch_stats) for s in sources)):
    np.testing.assert_allclose(got, np.mean([np.asarray(x, np.float64) for x in src], 0), rtol=1e-6, atol=1e-7)
  report = evaluation.evaluate_checkpoint(out, "latest", "test")
  assert 0 <= report["accuracy"] <= 1 and report["step"] == verified[-1]
  with open(os.path.join(out, "averaged.json")) as f:
    assert json.load(f)["steps"] == verified[-2:]
  with pytest.raises(FileExistsError):
    averaging.average(workdir, out, last=2)
  with pytest.raises(ValueError, match="fewer than"):
    averaging.average(workdir, str(tmp / "never"), last=99)
