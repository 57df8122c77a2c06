"""Few-shot linear evaluation on frozen features, the protocol of big_vision's ``evaluators/fewshot_lsr.py``.

For each seed, each class's training images are shuffled once (``np.random.default_rng(seed)``);
``shots`` of them per class fit a closed-form L2-regularised least-squares classifier on the
pooled features, scored by test accuracy. As in big_vision: features standardised with the
statistics of the shots (std + 1e-5), a constant feature of 100 for an almost unregularised
bias, targets one-hot in {-1, 1}, and ``(X^T X + l2 I)^{-1} X^T Y`` (or ``X^T (X X^T + l2 I)^{-1} Y``
when there are fewer images than dimensions) from one eigendecomposition, so that any number of
penalties costs one decomposition. The penalty is big_vision's: a fixed constant (its configs use
``2 ** 10``), not tuned per task; ``l2s`` evaluates several at once for a study of that choice.

``protocol(train, test)`` gives the accuracy per (shots, seed, l2) on any features (e.g.
``probe_sweep.cached_features`` of a zoo model); ``evaluate_run(workdir)`` on the pooled
``pre_logits`` of a run's checkpoint over its own train and test splits; ``summary`` their mean and
std over seeds. Runs in float64 NumPy: one small eigendecomposition per (shots, seed).
"""

import numpy as np

from tl_jax import data as data_lib
from tl_jax.evaluate import evaluation
from tl_jax.train import feature_cache

BIAS_CONSTANT = 100.0  # big_vision's: a bias feature this large is barely touched by the penalty
SHOTS = (1, 5, 10, 25)
L2 = 2.0 ** 10


def lsr_accuracy(x_train, y_train, x_test, y_test, num_classes: int, l2s=(L2,)) -> np.ndarray:
  """Test accuracy of the regularised least-squares classifier, one per penalty in ``l2s``."""
  x = np.asarray(x_train, np.float64)
  mean, std = x.mean(axis=0, keepdims=True), x.std(axis=0, keepdims=True) + 1e-5
  pad = lambda a: np.pad((np.asarray(a, np.float64) - mean) / std, ((0, 0), (0, 1)),
                         constant_values=BIAS_CONSTANT)
  x, xt = pad(x), pad(x_test)
  y = 2.0 * (np.asarray(y_train)[:, None] == np.arange(num_classes)).astype(np.float64) - 1.0
  if len(x) >= x.shape[1]:
    eigs, q = np.linalg.eigh(x.T @ x)
    lhs, rhs = q, q.T @ (x.T @ y)
  else:  # Woodbury: the (N, N) Gram matrix instead of the (D, D) one
    eigs, q = np.linalg.eigh(x @ x.T)
    lhs, rhs = x.T @ q, q.T @ y
  l2s = np.asarray(l2s, np.float64).reshape(-1)
  w = np.einsum("dk,lk,kc->ldc", lhs, 1.0 / (eigs[None] + l2s[:, None]), rhs)  # (L, D + 1, C)
  preds = np.argmax(np.einsum("nd,ldc->lnc", xt, w), axis=-1)
  return np.mean(preds == np.asarray(y_test)[None], axis=1)


def protocol(train, test, shots=SHOTS, seeds=(0, 1, 2), l2s=(L2,)) -> list[dict]:
  """Rows ``{shots, seed, l2, accuracy}`` for ``train``/``test`` = ``(features, labels)``.

  Raises:
    ValueError: a class has fewer training images than the largest ``shots``.
  """
  x, y = np.asarray(train[0]), np.asarray(train[1])
  num_classes = int(max(y.max(), np.asarray(test[1]).max())) + 1
  short = min(int(np.sum(y == c)) for c in range(num_classes))
  if short < max(shots):
    raise ValueError(f"{max(shots)} shots per class, but a class has only {short} training images.")
  rows = []
  for seed in seeds:
    rng = np.random.default_rng(seed)
    order = [rng.permutation(np.flatnonzero(y == c)) for c in range(num_classes)]
    for k in shots:
      idx = np.concatenate([o[:k] for o in order])
      acc = lsr_accuracy(x[idx], y[idx], test[0], test[1], num_classes, l2s)
      rows += [{"shots": k, "seed": seed, "l2": float(l2), "accuracy": float(a)} for l2, a in zip(l2s, acc)]
  return rows


def summary(rows) -> dict[tuple[int, float], tuple[float, float, int]]:
  """``(shots, l2) -> (mean, std (ddof=1; 0 for one seed), seeds)`` of the accuracy."""
  groups: dict[tuple[int, float], list[float]] = {}
  for r in rows:
    groups.setdefault((r["shots"], r["l2"]), []).append(r["accuracy"])
  return {g: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
          for g, v in groups.items()}


def run_features(workdir: str, which: str | int = "best", batch_size: int = 64,
                 splits=("train", "test")) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """``{split: (pooled pre_logits, labels)}`` of checkpoint ``which`` of the run in ``workdir``, on
  the run's own data (``config.data``, as ``evaluation.evaluate_checkpoint`` loads it)."""
  restored = evaluation.restore(workdir, which)
  dataset = data_lib.load(restored.config.data)
  variables = {"params": restored.state.params, "batch_stats": restored.state.batch_stats}
  return {s: (feature_cache.pooled_features(restored.state.apply_fn, variables, dataset.splits[s], batch_size,
                                            ("pre_logits",))["pre_logits"], np.asarray(dataset.splits[s].labels))
          for s in splits}


def evaluate_run(workdir: str, which: str | int = "best", shots=SHOTS, seeds=(0, 1, 2), l2s=(L2,),
                 batch_size: int = 64) -> list[dict]:
  """``protocol`` on a run's checkpoint: fit on its train split's features, score on its test split."""
  feats = run_features(workdir, which, batch_size)
  return protocol(feats["train"], feats["test"], shots, seeds, l2s)
