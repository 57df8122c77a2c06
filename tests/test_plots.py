import matplotlib.image
import numpy as np
import pytest

from tl_jax.metrics.plots import plot_confusion_matrix, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and min(img.shape[:2]) > 50
    # More than one distinct colour, without an expensive np.unique over all pixels.
    assert (img != img[0, 0]).any(axis=-1).any()


@pytest.mark.parametrize("num_classes", [10, 40])
@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_matrix_png(tmp_path, num_classes, normalize):
    rng = np.random.default_rng(num_classes)
    cm = rng.integers(0, 20, size=(num_classes, num_classes)) + 50 * np.eye(num_classes, dtype=int)
    cm[0] = 0  # a class with no examples must not break normalisation
    names = [f"category_{i}" for i in range(num_classes)]
    path = tmp_path / "nested" / "dir" / "cm.png"
    out = plot_confusion_matrix(cm, names, path, normalize=normalize, title="test")
    assert out == str(path)
    assert_valid_png(path)


def _records(with_val):
    recs = []
    for step in range(0, 200, 10):
        recs.append({"step": step, "epoch": step // 50, "lr": 1e-3,
                     "train_loss": 2.0 / (1 + step / 50), "train_accuracy": step / 250})
        if with_val and step % 50 == 0:
            recs.append({"step": step, "epoch": step // 50,
                         "val_loss": 2.2 / (1 + step / 50), "val_accuracy": step / 260})
    return recs


@pytest.mark.parametrize("with_val", [True, False])
def test_training_curves_png(tmp_path, with_val):
    path = tmp_path / "sub" / "curves.png"
    assert plot_training_curves(_records(with_val), path) == str(path)
    assert_valid_png(path)


def test_training_curves_without_accuracy(tmp_path):
    recs = [{"step": s, "train_loss": 1.0 / (s + 1)} for s in range(5)]
    assert_valid_png(plot_training_curves(recs, tmp_path / "loss_only.png"))


def test_accuracy_vs_data_bars_ticks_and_legend(tmp_path, monkeypatch):
    """Seeds plot as mean ± std, a single run as its interval; ticks name the sizes; the legend
    sits beside the axes (inside it hid the 224 px probe's point)."""
    from tl_jax.metrics import plots

    seen = {}

    def keep(fig, path):
        fig.canvas.draw()
        ax = fig.axes[0]
        seen["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["bars"] = {c.get_label(): [s[:, 1].tolist() for s in c.lines[2][0].get_segments()]
                        for c in ax.containers}
        seen["legend_outside"] = ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
        return saved(fig, path)

    saved = plots._save
    monkeypatch.setattr(plots, "_save", keep)
    rows = ([{"strategy": "full", "images_per_class": 10, "test_accuracy": a} for a in (0.50, 0.54)]
            + [{"strategy": "full", "images_per_class": 50, "test_accuracy": 0.7,
                "test_accuracy_low": 0.67, "test_accuracy_high": 0.72}])
    path = plots.plot_accuracy_vs_data(rows, tmp_path / "p.png", title="a long title " * 8)
    assert_valid_png(path)
    assert seen["ticks"] == ["10", "50"] and seen["legend_outside"]
    np.testing.assert_allclose(seen["bars"]["full"], [[50, 54], [67, 72]])


def test_accuracy_lines_draw_a_std_or_a_runs_interval(tmp_path, monkeypatch):
    """The studies' line plots: a ±std bar for seeds, a single run's (low, high) interval as given."""
    from tl_jax.metrics import plots

    seen = {}

    def keep(fig, path):
        seen["bars"] = [s[:, 1].tolist() for s in fig.axes[0].containers[0].lines[2][0].get_segments()]
        return saved(fig, path)

    saved = plots._save
    monkeypatch.setattr(plots, "_save", keep)
    path = plots.plot_accuracy_lines({"probe": [(1, 0.8, (0.75, 0.83)), (0, 0.6, 0.02)]}, tmp_path / "l.png",
                                     xlabel="cut point")
    assert_valid_png(path)
    np.testing.assert_allclose(seen["bars"], [[58, 62], [75, 83]])  # sorted by x
