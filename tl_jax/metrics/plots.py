"""PNG plots of evaluation and training results.

Figures are built with :class:`matplotlib.figure.Figure` and rendered by the
Agg canvas directly, never through pyplot: no global figure registry, no GUI
backend, safe in headless jobs and threads.
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import Any, Iterable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

# Above this many classes cell annotations overlap and only add noise.
_MAX_ANNOTATED_CLASSES = 30


def _new_figure(figsize) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _save(fig: Figure, path) -> str:
    if not hasattr(path, "write"):  # else a binary file object (TensorBoard images)
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    finally:
        # Drops renderer caches and artists; nothing references the figure otherwise.
        fig.clear()
    return path


def plot_confusion_matrix(
    confusion,
    class_names: Sequence[str],
    path,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> str:
    """Writes a confusion-matrix heat map as PNG.

    Args:
        confusion: ``[C, C]`` count matrix, rows true and columns predicted.
        class_names: ``C`` tick labels.
        path: Output file, parent directories created; or a binary file object.
        normalize: Colour by row-normalised fraction (recall per cell) and
            show it under each count; otherwise colour by raw counts.
        title: Optional figure title.

    Returns:
        ``path`` as a string.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion {cm.shape} does not match {len(class_names)} class names")
    names = [str(c) for c in class_names]

    row_sums = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, row_sums, out=np.zeros(cm.shape), where=row_sums > 0)
    values = frac if normalize else cm

    annotate = n <= _MAX_ANNOTATED_CLASSES
    # Annotated cells need ~0.6 in to fit two text lines; bare cells can be smaller.
    side = min(max(6.0, (0.6 if annotate else 0.3) * n + 2.0), 24.0)
    fig = _new_figure((side + 1.5, side))
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(int(cm.max()), 1)
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of true class" if normalize else "count")

    long_names = max((len(s) for s in names), default=0) > 3
    # Tick labels must fit within one cell's height (in points) to not overlap.
    cell_pt = 72.0 * (side - 2.0) / max(n, 1)
    tick_size = min(10.0, max(4.0, cell_pt / 1.5))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, fontsize=tick_size,
                       rotation=45 if long_names or n > 20 else 0,
                       ha="right" if long_names or n > 20 else "center",
                       rotation_mode="anchor")
    ax.set_yticklabels(names, fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)

    if annotate:
        cell_size = 9 if n <= 12 else 8 if n <= 20 else 7
        for i in range(n):
            for j in range(n):
                text = str(cm[i, j])
                if normalize:
                    text += f"\n{frac[i, j]:.2f}"
                # Light text on dark cells keeps the numbers legible.
                dark = values[i, j] > 0.5 * vmax
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_size,
                        color="white" if dark else "black")
    return _save(fig, path)


def _series(records: Iterable[Mapping[str, Any]], key: str) -> tuple[list, list]:
    steps, vals = [], []
    for r in records:
        v = r.get(key)
        if v is None or "step" not in r:
            continue
        v = float(v)
        if math.isfinite(v):
            steps.append(r["step"])
            vals.append(v)
    return steps, vals


def plot_training_curves(records: Sequence[Mapping[str, Any]], path) -> str:
    """Writes loss and accuracy curves against step as PNG.

    Args:
        records: Dicts as logged to ``metrics.jsonl``; each has ``step`` and
            any of ``train_loss``, ``train_accuracy``, ``val_loss``,
            ``val_accuracy`` (other keys are ignored). Missing or non-finite
            values are skipped, so train and val may be logged at different
            steps.
        path: Output file; parent directories are created.

    Returns:
        ``path`` as a string.
    """
    records = list(records)
    fig = _new_figure((12, 4.5))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        drawn = False
        for split, style in (("train", dict(lw=1.2)), ("val", dict(lw=1.5, marker="o", ms=4))):
            steps, vals = _series(records, f"{split}_{metric}")
            if steps:
                ax.plot(steps, vals, label=split, **style)
                drawn = True
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_vs_data(rows: Sequence[Mapping[str, Any]], path, *, title: str = "") -> str:
    """Test accuracy against training images per class, one line per strategy.

    ``rows`` hold ``strategy``, ``images_per_class`` and ``test_accuracy``; a single run's bar is
    its 95% interval over test images (``test_accuracy_low`` / ``_high``, when the rows hold them);
    several rows of one (strategy, size) (seeds) plot as mean with a ±std bar.
    """
    fig = _new_figure((6.5, 4.5))
    ax = fig.add_subplot()
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        sizes = sorted({r["images_per_class"] for r in rows if r["strategy"] == strategy})
        cells = [[r for r in rows if r["strategy"] == strategy and r["images_per_class"] == n] for n in sizes]
        mean = [100 * np.mean([r["test_accuracy"] for r in c]) for c in cells]
        bars = [(m - 100 * c[0]["test_accuracy_low"], 100 * c[0]["test_accuracy_high"] - m)
                if len(c) == 1 and c[0].get("test_accuracy_low") is not None
                else (100 * np.std([r["test_accuracy"] for r in c]),) * 2 for m, c in zip(mean, cells)]
        ax.errorbar(sizes, mean, yerr=np.array(bars).T, marker="o", capsize=3, label=strategy)
    ax.set_xscale("log")
    every_size = sorted({r["images_per_class"] for r in rows})
    ax.set_xticks(every_size, [str(n) for n in every_size])  # 10, 50, 200 rather than 10^1 .. 2x10^2
    ax.minorticks_off()
    ax.set_xlabel("training images per class")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="bars: 95% interval,\nor ±std over seeds", title_fontsize="small", fontsize="small",
              loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: never over a point
    if title:
        ax.set_title(textwrap.fill(title, 60), fontsize="medium")
    return _save(fig, path)


def plot_accuracy_vs_trained_params(rows: Sequence[Mapping[str, Any]], path, *, title: str = "") -> str:
    """Test accuracy against the number of trained parameters, one point per strategy.

    ``rows`` hold ``strategy``, ``trained_params`` and ``test_accuracy``.
    """
    fig = _new_figure((6.5, 4.5))
    ax = fig.add_subplot()
    for r in rows:
        ax.scatter([r["trained_params"]], [100 * r["test_accuracy"]], s=40)
        ax.annotate(r["strategy"], (r["trained_params"], 100 * r["test_accuracy"]),
                    textcoords="offset points", xytext=(5, 5))
    ax.set_xscale("log")
    ax.set_xlabel("trained parameters")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_image_grid(images, titles: Sequence[str], path, *, columns: int = 6, title: str = "") -> str:
    """uint8 images ``(N, H, W, 3)`` in a grid, each with its caption (e.g. true/predicted names)."""
    n = max(len(images), 1)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = _new_figure((1.8 * cols, 2.0 * rows))
    for i, (image, caption) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(np.asarray(image))
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    if not len(images):
        fig.add_subplot().text(0.5, 0.5, "none", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_lines(
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    path,
    *,
    xlabel: str,
    xticks: Sequence[tuple[float, str]] = (),
    title: str = "",
) -> str:
    """Test accuracy with error bars against ``x``, one line per series.

    Args:
        series: label -> ``[(x, mean accuracy, bar), ...]`` (accuracies in [0, 1]); ``bar`` is a
            ±std over seeds or a single run's interval ``(low, high)`` (``intervals.error_bar``).
        path: Output file.
        xlabel: The x axis' label.
        xticks: ``(x, label)`` tick labels (e.g. model names or cut points); default: numbers.
        title: Optional figure title.
    """
    fig = _new_figure((6.5, 4.5))
    ax = fig.add_subplot()
    for label, pts in series.items():
        pts = sorted(pts, key=lambda p: p[0])
        bars = [(p[1] - p[2][0], p[2][1] - p[1]) if isinstance(p[2], tuple) else (p[2], p[2]) for p in pts]
        ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=100 * np.array(bars, float).T,
                    marker="o", capsize=3, label=label)
    if xticks:
        ax.set_xticks([t[0] for t in xticks], [t[1] for t in xticks], rotation=30, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="bars: ±std over seeds,\nor one run's 95% interval", title_fontsize="small", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_reliability_diagram(bins: Mapping[str, Sequence[float]], path, *, ece: float | None = None,
                             title: str = "") -> str:
    """Accuracy against confidence per bin (``calibration.reliability``'s dict), the diagonal
    being calibrated; bars' gap to it is the miscalibration, the lower panel the bin counts."""
    edges, count = np.asarray(bins["edges"]), np.asarray(bins["count"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = _new_figure((5, 6))
    ax, hist = fig.add_subplot(4, 1, (1, 3)), fig.add_subplot(4, 1, 4)
    filled = count > 0
    ax.bar(centers[filled], np.asarray(bins["accuracy"])[filled], width=width[filled], edgecolor="black",
           color="tab:blue", label="accuracy")
    ax.bar(centers[filled], np.asarray(bins["confidence"])[filled] - np.asarray(bins["accuracy"])[filled],
           bottom=np.asarray(bins["accuracy"])[filled], width=width[filled], color="tab:red", alpha=0.3,
           edgecolor="tab:red", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax.legend(loc="upper left")
    ax.set_title((title + "  " if title else "") + (f"ECE {ece:.4f}" if ece is not None else ""))
    hist.bar(centers, count, width=width, edgecolor="black", color="gray")
    hist.set(xlim=(0, 1), xlabel="confidence (top-1)", ylabel="examples")
    return _save(fig, path)
