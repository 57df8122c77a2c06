"""``train.num_steps``: a run's length in steps, exactly (0 = ``train.num_epochs`` epochs).

Epochs drop the remainder of the train split, so a step count given as epochs
is rounded down to whole epochs (BiT's 10,000 CIFAR-10 steps ran as 103 epochs
of 97 steps: 9,991). A run of ``num_steps`` evaluates at the end of every
``eval_every_epochs`` epoch as before and always after its last step, which
then is the final checkpoint.
"""

import importlib.util
import json
import math
import os
import pathlib

import ml_collections
import pytest
import tiny

from tl_jax.errors import InvalidInput
from tl_jax.train import config_checks, trainer, workdir as workdir_lib

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
  return tiny.write_npz(tmp_path_factory.mktemp("num_steps") / "digits.npz")


@pytest.mark.parametrize("num_steps, evaluated", [(6, [4, 6]), (3, [3])])
def test_run_takes_exactly_num_steps(npz, tmp_path, num_steps, evaluated):
  # The tiny run's train split gives 4 steps per epoch: 6 is 1.5 epochs, 3 is less than one.
  cfg = tiny.config(npz, **{"train.num_steps": num_steps, "train.num_epochs": 3})
  summary = trainer.train_and_evaluate(cfg, str(tmp_path / "run"))
  records = workdir_lib.read_metrics(str(tmp_path / "run"))
  assert [r["step"] for r in records] == evaluated
  assert summary["final_step"] == num_steps and summary["best_step"] in evaluated
  assert os.path.exists(os.path.join(tmp_path, "run", "eval", f"test_step{num_steps}", "report.json"))
  # The schedule spans the run: the last step's lr is the cosine's at (n - 1) / n of it.
  assert records[-1]["lr"] == pytest.approx(cfg.optim.lr * 0.5 * (1 + math.cos(math.pi * (num_steps - 1) / num_steps)))


def test_num_steps_zero_is_num_epochs(quickstart_config):
  assert quickstart_config.train.num_steps == 0  # every config from quickstart has the key
  config_checks.check(quickstart_config)
  for bad in (-1, 2.5, True):  # a config from JSON or a dict, where no type check applies
    plain = quickstart_config.to_dict()
    plain["train"]["num_steps"] = bad
    with pytest.raises(InvalidInput, match=r"train\.num_steps"):
      config_checks.check(ml_collections.ConfigDict(plain))


def test_bit_hyperrule_runs_the_rules_steps_exactly():
  spec = importlib.util.spec_from_file_location("bit_hyperrule", ROOT / "configs" / "bit_hyperrule.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for arg, steps in (("50000,32,32", 10_000), ("5000,500,500", 500), ("1000000,64,64", 20_000)):
    c = module.get_config(arg)
    assert c.train.num_steps == c.hyperrule.steps == steps
  # CIFAR-10's train split (45,000 after the 10% validation split): 87 steps per epoch. Epochs
  # could only give 103 x 87 = 8,961 steps (9,991 with the whole 50,000): num_steps gives 10,000.
  c = module.get_config("50000,32,32")
  assert c.train.num_steps == 10_000 and 45_000 // c.train.batch_size * c.train.num_epochs == 8_961
  json.dumps(c.to_dict())
