"""Feature caching: the head trained on cached features is the head trained on images."""

import csv
import os

import jax
import numpy as np
import pytest

from tl_jax import data as data_lib
from tl_jax.metrics import intervals
from tl_jax.studies import compare
from tl_jax.train import feature_cache, steps, trainer

pytestmark = pytest.mark.usefixtures("unrendered_plots")  # no test here looks at a plot


def _reasons(cfg, state, split):
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  return feature_cache.reasons_not(cfg, trainer.plan_of(cfg, 10), split, state.apply_fn, variables)


def test_head_on_cached_features_equals_head_on_images(quickstart_config):
  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size = 32
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  state, groups = trainer.create_state(cfg, 10, 10)
  rng = np.random.default_rng(0)
  split = data_lib.Split(rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8),
                         rng.integers(0, 10, 24).astype(np.int32))
  assert not _reasons(cfg, state, split)
  cached = feature_cache.extract(state, split, batch_size=16)
  assert cached.images.shape == (24, 1280) and cached.images.dtype == np.float32
  step = jax.jit(steps.train_step)  # dropout 0.2 included: same rng, same masks
  on_images, on_features = state, feature_cache.on_features(state)
  for i in range(3):
    idx = slice(8 * i, 8 * i + 8)
    on_images, _ = step(on_images, {"image": split.images[idx], "label": split.labels[idx]}, jax.random.key(1))
    on_features, _ = step(on_features, {"image": cached.images[idx], "label": cached.labels[idx]},
                          jax.random.key(1))
  np.testing.assert_allclose(on_images.params["head"]["kernel"], on_features.params["head"]["kernel"],
                             rtol=1e-4, atol=1e-6)
  assert np.any(np.asarray(on_features.params["head"]["kernel"]) != 0)
  # A trained backbone (or batch statistics) rules caching out.
  cfg.param_groups = dict(preset=dict(name="linear_probe"), frozen=dict(bn="batch"))
  state, groups = trainer.create_state(cfg, 10, 10, pretrained=False)
  assert _reasons(cfg, state, split) == ["the backbone trains (or changes BatchNorm mode) in some phase"]


def test_train_per_class_subsets_training_split():
  cfg = dict(name="digits", image_size=8, test_fraction=0.3, val_fraction=0.1, seed=0, train_per_class=7)
  dataset = data_lib.load(cfg)
  assert np.array_equal(np.bincount(dataset.splits["train"].labels), [7] * 10)
  assert len(dataset.splits["test"]) == len(data_lib.load(dict(cfg, train_per_class=0)).splits["test"])
  try:
    data_lib.load(dict(cfg, train_per_class=500))
  except ValueError as e:
    assert "train_per_class=500" in str(e)
  else:
    raise AssertionError("too many images per class must be an error")


def test_compare_sweep_smoke(tmp_path, load_config):
  cfg = load_config("compare_digits")
  cfg.unlock()
  for name in list(cfg.compare.strategies):
    if name not in ("scratch", "linear_probe"):
      del cfg.compare.strategies[name]
  cfg.compare.images_per_class, cfg.compare.num_epochs, cfg.compare.logreg = (10,), (8,), True
  rows = compare.sweep(cfg, str(tmp_path))
  by_name = {r["strategy"]: r for r in rows}
  assert set(by_name) == {"scratch", "linear_probe"}
  assert by_name["scratch"]["steps"] == 48 and by_name["linear_probe"]["steps"] == 5 * 48  # epochs_mult
  # Pretrained features beat random init with 10 images per class, even at 32 px.
  assert by_name["linear_probe"]["test_accuracy"] > by_name["scratch"]["test_accuracy"] + 0.1, rows
  assert by_name["linear_probe"]["logreg_test_accuracy"] > 0.2 and by_name["scratch"]["logreg_test_accuracy"] is None
  for name in ("results.csv", "results.md", "accuracy_vs_images_per_class.png"):
    assert os.path.getsize(tmp_path / name) > 0
  assert "| linear_probe |" in (tmp_path / "results.md").read_text()
  assert os.path.exists(tmp_path / "linear_probe" / "ipc10" / "feature_cache" / "train.npz")
  # The paired test of the two runs, from their per-image predictions on the same test images.
  with open(tmp_path / "paired.csv") as f:
    (pair,) = list(csv.DictReader(f))
  a, b = by_name[pair["a"]], by_name[pair["b"]]
  assert {pair["a"], pair["b"]} == {"scratch", "linear_probe"}
  assert float(pair["difference"]) == pytest.approx(a["test_accuracy"] - b["test_accuracy"], abs=1e-6)
  assert pair["separated"] == "True" and float(pair["mcnemar_p"]) < 1e-3, pair
  assert "| separated |" in (tmp_path / "paired.md").read_text()


def test_paired_tests_pair_runs_on_the_same_images_only(tmp_path):
  labels = np.arange(200) % 4

  def run(name, pred, size=10, seed=0, y=labels):
    os.makedirs(tmp_path / name, exist_ok=True)
    np.savez(tmp_path / name / "predictions.npz", labels=y, pred=pred)
    return {"strategy": name, "images_per_class": size, "seed": seed,
            "predictions": str(tmp_path / name / "predictions.npz")}
  wrong = labels.copy()
  wrong[:20] = (wrong[:20] + 1) % 4  # B misses 20 images A gets right
  rows = [run("a", labels), run("b", wrong), run("same_as_a", labels), run("other_seed", labels, seed=1),
          run("other_images", labels[::-1], y=labels[::-1])]  # other test images (other labels)
  pairs = {(p["a"], p["b"]): p for p in compare.paired_tests(rows)}
  assert set(pairs) == {("a", "b"), ("a", "same_as_a"), ("b", "same_as_a")}  # other seed / images: unpaired
  assert pairs[("a", "b")]["difference"] == pytest.approx(0.1) and pairs[("a", "b")]["separated"]
  assert pairs[("a", "b")]["mcnemar_p"] == pytest.approx(2 * 0.5**20)  # 20 discordant images, all one way
  same = pairs[("a", "same_as_a")]
  assert same["difference"] == 0 and not same["separated"] and same["mcnemar_p"] == 1.0
  compare.write_paired(list(pairs.values()), str(tmp_path))
  assert "not separated" in (tmp_path / "paired.md").read_text()


def test_paired_tests_pool_seeds_as_each_images_fraction_right(tmp_path):
  labels = np.arange(100) % 4

  def run(name, seed, wrong):
    pred = labels.copy()
    pred[wrong] = (pred[wrong] + 1) % 4
    os.makedirs(tmp_path / f"{name}{seed}", exist_ok=True)
    np.savez(tmp_path / f"{name}{seed}" / "predictions.npz", labels=labels, pred=pred)
    return {"strategy": name, "images_per_class": 10, "seed": seed,
            "predictions": str(tmp_path / f"{name}{seed}" / "predictions.npz")}
  # A misses 0, 1 or 2 images per seed; B misses 10, 10, 13: A ahead by 10 points on average.
  rows = [run("a", 0, []), run("a", 1, [0]), run("a", 2, [0, 1]),
          run("b", 0, np.arange(10)), run("b", 1, np.arange(10, 20)), run("b", 2, np.arange(20, 33))]
  pairs = compare.paired_tests(rows)
  assert [p["seed"] for p in pairs] == [0, 1, 2, "mean"]
  mean = pairs[-1]
  assert (mean["a"], mean["b"]) == ("a", "b") and np.isnan(mean["mcnemar_p"])
  assert mean["difference"] == pytest.approx(np.mean([p["difference"] for p in pairs[:3]]))
  assert mean["a_accuracy"] == pytest.approx(1 - 3 / 300) and mean["separated"]
  # The bootstrap of each image's fraction of seeds right, by hand (same resampling seed).
  frac_a = np.ones(100)
  frac_a[0], frac_a[1] = 1 / 3, 2 / 3
  frac_b = np.ones(100)
  frac_b[:33] -= 1 / 3
  assert (mean["difference_low"], mean["difference_high"]) == pytest.approx(
      intervals.paired_bootstrap(frac_a, frac_b)[1:])
  # Seed spread kept apart: the pooled interval is narrower than any one seed's.
  assert mean["difference_high"] - mean["difference_low"] < min(
      p["difference_high"] - p["difference_low"] for p in pairs[:3])
  compare.write_paired(pairs, str(tmp_path))
  assert "| 10 | mean | a | b | +10.0 |" in (tmp_path / "paired.md").read_text()


def test_compare_seeds_repeat_small_sizes_and_report_mean_std(tmp_path, load_config, monkeypatch):
  # The bookkeeping only: each "run" reports an accuracy made of its seed and size.
  calls = []

  def fake_run(cfg, workdir):
    calls.append((cfg.seed, cfg.data.train_per_class, workdir))
    os.makedirs(workdir)
    acc = 0.5 + 0.1 * (cfg.seed - 3) + cfg.data.train_per_class / 1000
    return {"final_test_accuracy": acc, "best_val_accuracy": acc, "best_test_accuracy": acc}

  monkeypatch.setattr(compare.trainer, "train_and_evaluate", fake_run)
  cfg = load_config("compare_digits")
  cfg.unlock()
  cfg.seed = 3
  cfg.compare.strategies = dict(scratch=cfg.compare.strategies["scratch"],
                                chosen=dict(cfg.compare.strategies["scratch"], images_per_class=(100,)))
  cfg.compare.images_per_class, cfg.compare.num_epochs = (10, 100), (1, 1)
  cfg.compare.seeds, cfg.compare.seeds_up_to = (0, 1, 2), 50
  rows = compare.sweep(cfg, str(tmp_path))
  assert [(s, n) for s, n, _ in calls] == [(3, 10), (4, 10), (5, 10), (3, 100)]
  assert [os.path.basename(w) for _, _, w in calls] == ["ipc10", "ipc10_seed1", "ipc10_seed2", "ipc100"]
  # "chosen" has scratch's config: its 100/class row is scratch's run, not a second one.
  assert [(r["strategy"], r["seed"]) for r in rows] == [("scratch", 0), ("scratch", 1), ("scratch", 2),
                                                        ("chosen", 0), ("scratch", 0)]
  assert rows[-1]["test_accuracy"] == rows[-2]["test_accuracy"]
  # seeds 3, 4, 5 at 10/class: 50 +- 8.2 points + 1; one run at 100/class
  # Each cell carries the 95% Wilson interval of its (mean) accuracy over the test split.
  n = rows[0]["test_images"]
  assert n > 0 and all(r["test_images"] == n for r in rows)
  ci = lambda acc: "[{:.1f}, {:.1f}]".format(*(100 * x for x in intervals.wilson(round(acc * n), n)))
  assert f"| scratch | 61.0 ± 8.2% {ci(0.61)} | 60.0% {ci(0.6)} |" in (tmp_path / "results.md").read_text()
  assert f"| chosen |  | 60.0% {ci(0.6)} |" in (tmp_path / "results.md").read_text()
  assert (rows[-1]["test_accuracy_low"], rows[-1]["test_accuracy_high"]) == intervals.wilson(round(0.6 * n), n)
  with open(tmp_path / "results.csv") as f:
    assert next(csv.reader(f)) == list(compare.FIELDS)
  # A rerun reads the finished runs back instead of training again.
  calls.clear()
  assert compare.sweep(cfg, str(tmp_path)) == rows and calls == []
  # seeds_up_to <= 0: every size is repeated per seed, all images (0) too.
  cfg.compare.images_per_class, cfg.compare.num_epochs, cfg.compare.seeds_up_to = (0,), (1,), 0
  cfg.compare.strategies = dict(scratch=cfg.compare.strategies["scratch"])
  compare.sweep(cfg, str(tmp_path / "all"))
  assert [os.path.basename(w) for _, _, w in calls] == ["ipcall", "ipcall_seed1", "ipcall_seed2"]


def test_cut_point_sweep_pairs_each_probe_with_the_finetune_frozen_to_it(tmp_path, monkeypatch):
  # configs/cut_points.py: one fine-tune per cut point, each freezing the first k units; the
  # table puts the probe of a cut point's features beside the fine-tune frozen up to it.
  from configs import cut_points
  cfg = cut_points.get_config()
  units = ["stem"] + [f"stage{i}" for i in range(1, 8)]
  strategies = cfg.compare.strategies
  assert set(strategies) == {"ft_frozen_to_none", *[f"ft_frozen_to_{u}" for u in units], "ft_frozen_to_pre_logits"}
  assert [strategies[f"ft_frozen_to_{u}"].param_groups.preset.k for u in units] == list(range(1, 9))
  assert strategies["ft_frozen_to_pre_logits"].param_groups.preset.name == "linear_probe"
  assert cfg.probe.features == ("all",) and cfg.data.image_size == 224
  assert cut_points.cut_units("resnet18") == ["stem", "stage1", "stage2", "stage3", "stage4"]
  cfg.unlock()
  cfg.data.image_size = 32  # only the fake runs below read the data
  seen = []

  def fake_run(run_cfg, workdir):
    assert "probe" not in run_cfg and run_cfg.data.image_size == 160
    seen.append(dict(run_cfg.param_groups.preset))
    os.makedirs(workdir)
    preset = run_cfg.param_groups.preset
    acc = 0.9 - 0.05 * {"full": 0, "linear_probe": 9}.get(preset.name, preset.get("k"))
    return {"final_test_accuracy": acc, "best_val_accuracy": acc, "best_test_accuracy": acc}

  monkeypatch.setattr(compare.trainer, "train_and_evaluate", fake_run)
  rows = compare.sweep(cfg, str(tmp_path))
  assert sorted(p.get("k", 0) for p in seen) == [0, 0, *range(1, 9)]
  probe_rows = [{"model": "efficientnet_lite0", "feature": f, "images_per_class": 113, "test_accuracy": 0.5 + 0.04 * i,
                 "test_images": 1000} for i, f in enumerate(units + ["pre_logits"])][::-1]
  table = compare.write_cut_points(probe_rows, rows, str(tmp_path))
  assert [r["cut_point"] for r in table] == ["none", *units, "pre_logits"]
  assert table[0]["probe_test_accuracy"] is None and table[0]["finetune_test_accuracy"] == pytest.approx(0.9)
  assert table[3]["probe_test_accuracy"] == pytest.approx(0.58) and table[3]["finetune_test_accuracy"] == pytest.approx(0.75)
  ci = lambda acc, n: "[{:.1f}, {:.1f}]".format(*(100 * x for x in intervals.wilson(round(acc * n), n)))
  n = rows[0]["test_images"]  # each accuracy with its 95% Wilson interval over its test images
  assert f"| stage2 | 58.0% {ci(0.58, 1000)} | 75.0% {ci(0.75, n)} |" in (tmp_path / "cut_points.md").read_text()
  assert os.path.getsize(tmp_path / "cut_points.png") > 0


def test_accuracy_vs_imagenet_top1_plot_puts_probe_beside_finetune(tmp_path, monkeypatch):
  top1 = {"lite0": 75.1, "lite1": 76.7}  # strategy -> top-1; a trial of lite0's model is left out
  rows = [{"strategy": f"lite{i}", "model": f"efficientnet_lite{i}", "images_per_class": 113,
           "test_accuracy": 0.9 + 0.01 * i} for i in range(2)]
  rows.append({"strategy": "trial", "model": "efficientnet_lite0", "images_per_class": 113, "test_accuracy": 0.5})
  probe_csv = tmp_path / "probe_results.csv"
  probe_csv.write_text("model,feature,images_per_class,test_accuracy\n"
                       "efficientnet_lite0,pre_logits,113,0.95\nefficientnet_lite1,pre_logits,113,0.94\n"
                       "efficientnet_lite1,stage3,113,0.5\n")
  calls = []
  orig = compare.plots.plot_accuracy_lines

  def spy(series, path, **kw):
    calls.append(series)
    return orig(series, path, **kw)

  monkeypatch.setattr(compare.plots, "plot_accuracy_lines", spy)
  compare.plot_vs_imagenet(rows, top1, str(tmp_path), str(probe_csv))
  assert calls[0] == {"fine-tune, 113/class": [(75.1, 0.9, 0.0), (76.7, 0.91, 0.0)],
                      "linear probe, 113/class": [(75.1, 0.95, 0.0), (76.7, 0.94, 0.0)]}
  assert os.path.getsize(tmp_path / "accuracy_vs_imagenet_top1.png") > 0
  # Seeds are one point (mean, ±std bar); a single run gets its 95% Wilson interval over its test images.
  seeds = [{"strategy": "lite0", "model": "efficientnet_lite0", "images_per_class": 367, "seed": k,
            "test_accuracy": a} for k, a in enumerate((0.90, 0.91, 0.92))]
  single = [{"strategy": "lite1", "model": "efficientnet_lite1", "images_per_class": 367, "seed": 0,
             "test_accuracy": 0.93, "test_images": 1000}]
  compare.plot_vs_imagenet(seeds + single, top1, str(tmp_path))
  ((x0, m0, e0), (x1, m1, e1)), = calls[1].values()
  assert (x0, x1) == (75.1, 76.7) and m0 == pytest.approx(0.91) and e0 == pytest.approx(np.std([0.9, 0.91, 0.92]))
  assert m1 == 0.93 and e1 == pytest.approx((0.9125, 0.9442), abs=1e-4)  # Wilson, 930 of 1,000


def test_a_recipe_named_after_its_trial_reuses_the_finished_trial(tmp_path, load_config, monkeypatch):
  # finetune_lite: `lite0` is `trial_bb03`'s config under another name, swept (in sorted order)
  # before it, after the trials ran in an earlier command: it must read the trial back, not retrain.
  calls = []

  def fake_run(cfg, workdir):
    calls.append(workdir)
    os.makedirs(workdir)
    return {"final_test_accuracy": 0.7, "best_val_accuracy": 0.7, "best_test_accuracy": 0.7}

  monkeypatch.setattr(compare.trainer, "train_and_evaluate", fake_run)
  cfg = load_config("compare_digits")
  cfg.unlock()
  trial = dict(cfg.compare.strategies["full"])
  cfg.compare.strategies = dict(trial_b=trial)
  cfg.compare.images_per_class, cfg.compare.num_epochs = (10,), (1,)
  compare.sweep(cfg, str(tmp_path))
  cfg.compare.strategies = dict(a_recipe=trial, trial_b=trial)
  rows = compare.sweep(cfg, str(tmp_path))
  assert [os.path.basename(os.path.dirname(w)) for w in calls] == ["trial_b"]
  assert [r["strategy"] for r in rows] == ["a_recipe", "trial_b"] and rows[0]["test_accuracy"] == 0.7


def test_cached_and_uncached_runs_of_a_linear_probe_train_the_same_head(quickstart_config, tmp_path):
  """The whole trainer, caching on and off: same data order, same dropout keys, same head."""
  from tl_jax.evaluate import evaluation

  cfg = quickstart_config
  cfg.unlock()
  cfg.data.image_size, cfg.train.num_steps, cfg.train.batch_size = 32, 6, 64
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  heads = {}
  for cache in (True, False):
    cfg.train.cache_features = cache
    workdir = str(tmp_path / f"cache_{cache}")
    trainer.train_and_evaluate(cfg, workdir)
    assert os.path.isdir(os.path.join(workdir, "feature_cache")) == cache
    heads[cache] = np.asarray(evaluation.restore(workdir, "latest").state.params["head"]["kernel"])
  np.testing.assert_allclose(heads[True], heads[False], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,drop_path,streamed,reason", [
    ("vgg11_fc", 0.0, False, "the backbone draws random numbers in training (dropout or stochastic depth)"),
    ("vgg11", 0.0, False, None),  # its only dropout is the head's, after pre_logits
    ("efficientnet_lite0", 0.1, False, "the backbone draws random numbers in training (dropout or stochastic depth)"),
    ("efficientnet_lite0", 0.0, True, "training takes random-resized crops (data.stream.train_crop='center' trains on fixed ones)"),
])
def test_randomness_in_the_uncached_step_rules_caching_out(quickstart_config, name, drop_path, streamed, reason):
  from tl_jax.data import streaming
  from tl_jax.freezing import inspect_groups

  cfg = quickstart_config
  cfg.unlock()
  cfg.model.name, cfg.model.drop_path_rate, cfg.data.image_size = name, drop_path, 32
  cfg.param_groups = dict(preset=dict(name="linear_probe"))
  variables = inspect_groups.abstract_variables(cfg, 10)  # shapes only: VGG's fc1 is 400 MB
  images = (streaming.Streamed(read=None, indices=np.arange(8), size=32) if streamed
            else np.zeros((8, 32, 32, 3), np.uint8))
  split = data_lib.Split(images, np.zeros(8, np.int32))
  model = trainer._model(cfg, 10)
  got = feature_cache.reasons_not(cfg, trainer.plan_of(cfg, 10), split, model.apply, variables)
  assert got == ([] if reason is None else [reason])
