"""Classification metrics from integer labels and predictions.

Everything except :func:`topk_correct` runs on the host with numpy: the
trainer accumulates a confusion matrix over an epoch and derives all other
metrics from it, so no per-example arrays have to be kept around.

Macro averages follow scikit-learn's default (``labels=None``): they run over
the classes present in the labels or the predictions. A class of the run that
a test split lacks entirely (no example, never predicted) has no precision or
recall to average; counting it as 0 would lower the macro figures by the share
of such classes, which depends on the split rather than on the model. Every
class keeps its ``per_class`` entry (zeros, ``support`` 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """Counts (true, predicted) pairs.

    Args:
        labels: Integer array of true classes, any shape.
        preds: Integer array of predicted classes, same shape as ``labels``.
        num_classes: Number of classes ``C``; values must lie in ``[0, C)``.

    Returns:
        ``int64`` array of shape ``[C, C]``; rows are true classes, columns
        predicted classes.

    Raises:
        ValueError: On shape mismatch or out-of-range class ids.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    preds = np.asarray(preds).reshape(-1).astype(np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ in size")
    for name, a in (("labels", labels), ("preds", preds)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} out of range [0, {num_classes})")
    # Flattening (true, pred) to one index lets a single bincount do the counting.
    flat = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def classification_report(
    confusion,
    class_names: Sequence[str] | None = None,
    *,
    top5_correct=None,
) -> dict[str, Any]:
    """Summarises a confusion matrix as a JSON-serialisable dict.

    Precision of a class that is never predicted, and recall of a class with
    no true examples, are defined as 0 (like sklearn's ``zero_division=0``);
    F1 is then 0 as well. Such classes count in the macro averages unless
    they are neither a label nor a prediction (sklearn's ``average="macro"``).

    Args:
        confusion: ``[C, C]`` matrix from :func:`confusion_matrix`.
        class_names: Optional ``C`` names; defaults to ``"0" .. "C-1"``.
        top5_correct: Optional number of examples whose label was in the top
            5, or a bool array with one entry per example.

    Returns:
        Dict with ``accuracy``, ``num_examples``, ``per_class`` (list of
        ``{name, precision, recall, f1, support}``, one per class),
        ``macro_precision``, ``macro_recall``, ``macro_f1`` (over the classes
        present in labels or predictions), ``weighted_f1`` and, if
        ``top5_correct`` is given, ``top5_accuracy``. All values are plain
        Python ``int``/``float``/``str``.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be square, got shape {cm.shape}")
    num_classes = cm.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")

    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    total = int(cm.sum())
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    # sklearn's macro: over the classes that occur as a label or a prediction.
    present = (support + predicted) > 0
    macro = lambda x: float(x[present].mean()) if present.any() else 0.0

    report: dict[str, Any] = {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "num_examples": total,
        "per_class": [
            {
                "name": str(name),
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        ],
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
    }
    if top5_correct is not None:
        top5 = np.asarray(top5_correct)
        if top5.ndim and top5.size != total:
            raise ValueError(f"top5_correct has {top5.size} entries for {total} examples")
        n_top5 = int(top5.sum())
        report["top5_accuracy"] = n_top5 / total if total else 0.0
    return report


def topk_correct(logits, labels, k: int):
    """Whether each label is among the ``k`` largest logits; jit-friendly.

    Ties count in the label's favour (a label tied with the k-th largest
    logit is correct), so ``k=1`` equals ``argmax == label`` unless the
    maximum is tied.

    Args:
        logits: ``[batch, C]`` array.
        labels: ``[batch]`` integer array.
        k: Number of top classes accepted.

    Returns:
        Bool array of shape ``[batch]``.
    """
    logits = jnp.asarray(logits)
    label_logit = jnp.take_along_axis(logits, jnp.asarray(labels)[:, None], axis=-1)
    # Rank by counting strictly larger logits: O(batch*C), no sort needed.
    return jnp.sum(logits > label_logit, axis=-1) < k
