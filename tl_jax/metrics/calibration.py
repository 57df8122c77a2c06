"""Is a model's confidence honest? Calibration of a split's logits, in float64 numpy.

- ``ece``: expected calibration error (Guo et al., ICML 2017) over ``num_bins`` equal-width bins
  of the top-1 confidence: ``sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|``.
- ``classwise_ece``: the same per class on ``p_k`` against ``[y == k]`` over all examples, averaged
  over the classes (Kull et al., NeurIPS 2019; Nixon et al.'s static calibration error).
- ``nll``: mean negative log-likelihood of the labels; ``brier``: mean over examples of
  ``sum_k (p_k - [y == k])^2`` (Brier 1950; between 0 and 2).
- ``reliability``: per bin the count, accuracy and mean confidence (the diagram's data).

A confidence exactly on an inner edge goes to the upper bin; 1.0 to the last bin (netcal's
binning, ``tests/metrics/test_calibration.py`` compares with it).
"""

from typing import Any

import numpy as np

NUM_BINS = 15


def log_softmax(logits: np.ndarray) -> np.ndarray:
  z = np.asarray(logits, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
  return np.exp(log_softmax(logits))


def _bin_index(confidence: np.ndarray, num_bins: int) -> np.ndarray:
  return np.clip(np.floor(confidence * num_bins).astype(np.int64), 0, num_bins - 1)


def reliability(probs: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, list]:
  """Per equal-width bin of the top-1 confidence: ``count``, ``accuracy``, ``confidence`` (0 when empty)
  and the bin ``edges``."""
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
  confidence, correct = probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)
  idx = _bin_index(confidence, num_bins)
  count = np.bincount(idx, minlength=num_bins).astype(np.float64)
  safe = np.maximum(count, 1)
  return {"edges": np.linspace(0, 1, num_bins + 1).tolist(), "count": count.astype(int).tolist(),
          "accuracy": (np.bincount(idx, correct, num_bins) / safe).tolist(),
          "confidence": (np.bincount(idx, confidence, num_bins) / safe).tolist()}


def _binned_gap(scores: np.ndarray, targets: np.ndarray, num_bins: int) -> float:
  idx = _bin_index(scores, num_bins)
  count = np.bincount(idx, minlength=num_bins)
  gap = np.abs(np.bincount(idx, targets, num_bins) - np.bincount(idx, scores, num_bins))  # count * |acc - conf|
  return float(gap.sum() / max(count.sum(), 1))


def ece(probs: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> float:
  """Expected calibration error of the top-1 confidence (0 = calibrated, 1 = worst)."""
  probs = np.asarray(probs, np.float64)
  correct = (probs.argmax(-1) == np.asarray(labels)).astype(np.float64)
  return _binned_gap(probs.max(-1), correct, num_bins)


def classwise_ece(probs: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> float:
  """Mean over classes of the ECE of ``p_k`` against ``[y == k]`` (every example in every class)."""
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
  return float(np.mean([_binned_gap(probs[:, k], (labels == k).astype(np.float64), num_bins)
                        for k in range(probs.shape[-1])]))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
  """Mean negative log-likelihood (natural log) of ``labels`` under ``softmax(logits)``."""
  labels = np.asarray(labels)
  return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
  """Mean over examples of the squared distance between the probabilities and the one-hot label."""
  probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
  onehot = np.eye(probs.shape[-1])[labels]
  return float(((probs - onehot) ** 2).sum(-1).mean())


def calibration_report(logits: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, Any]:
  """``ece``, ``classwise_ece``, ``nll``, ``brier`` and ``reliability`` (bins) of a split's logits."""
  probs = softmax(logits)
  return {"ece": ece(probs, labels, num_bins), "classwise_ece": classwise_ece(probs, labels, num_bins),
          "nll": nll(logits, labels), "brier": brier(probs, labels),
          "reliability": reliability(probs, labels, num_bins)}
