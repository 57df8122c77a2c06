"""Shared by the RegNet and ConvNeXt parity tests: one conversion, logits and pooled features compared."""

import jax
import numpy as np
import torch
from safetensors import torch as safetensors_torch

from tl_jax import models, weights

TOL = 1e-4
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def images(seed=0, size=32):
  return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)


def compare(name, source, files, expected_logits, expected_pooled, x):
  """Converts every file in ``files`` ({format: path}); returns {format: (max dlogit, max dpooled)}.

  ``expected_logits=None``: a headless file, loaded into a model without head.
  """
  headless = expected_logits is None
  expected_logits = expected_pooled if headless else expected_logits
  assert expected_logits.std() > 0.1 and expected_pooled.std() > 0.1, "degenerate reference"
  model = models.create(name, 0 if headless else expected_logits.shape[-1])
  init = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1]))
  diffs, apply = {}, jax.jit(model.apply)  # one compilation for all files
  for fmt, file in files.items():
    variables = weights.merge(init, weights.convert(name, str(file), source))
    logits, features = apply(variables, x)
    diffs[fmt] = (float(np.max(np.abs(np.asarray(logits) - expected_logits))),
                  float(np.max(np.abs(np.asarray(features["pre_logits"]) - expected_pooled))))
    print(f"PARITY {name} {source} {fmt} max|dlogit|={diffs[fmt][0]:.2e} "
          f"max|dpooled|={diffs[fmt][1]:.2e} (logit std {expected_logits.std():.2f})")
  assert max(max(d) for d in diffs.values()) <= TOL, diffs
  return diffs


def torch_check(name, source, module, tmp_path, size=32, seed=0):
  """Saves a randomised torch ``module`` (with ``.pooled``) as .pth and .safetensors and compares."""
  state = module.state_dict()
  files = {"pth": tmp_path / "w.pth", "safetensors": tmp_path / "w.safetensors"}
  torch.save(state, files["pth"])
  safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, files["safetensors"])
  x = images(seed, size)
  t = torch.from_numpy(np.ascontiguousarray(((x - MEAN) / STD).transpose(0, 3, 1, 2)))
  with torch.no_grad():
    module.pooled = False
    logits = module(t).numpy()
    module.pooled = True
    pooled = module(t).numpy()
  return compare(name, source, files, logits, pooled, x)
