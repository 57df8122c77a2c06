import json

import jax
import numpy as np
import pytest
from sklearn import metrics as skm

from tl_jax.metrics.classification import classification_report, confusion_matrix, topk_correct

NUM_CLASSES = 7
NEVER_PREDICTED = 2
ABSENT_FROM_LABELS = 5


@pytest.fixture(scope="module")
def labels_preds():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, size=500)
    labels[labels == ABSENT_FROM_LABELS] = 0
    preds = np.where(rng.random(500) < 0.6, labels, rng.integers(0, NUM_CLASSES, size=500))
    preds[preds == NEVER_PREDICTED] = 1
    assert ABSENT_FROM_LABELS in preds and NEVER_PREDICTED in labels
    return labels, preds


def test_confusion_matrix_matches_sklearn(labels_preds):
    labels, preds = labels_preds
    cm = confusion_matrix(labels, preds, NUM_CLASSES)
    ref = skm.confusion_matrix(labels, preds, labels=range(NUM_CLASSES))
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, ref)


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)


def test_report_matches_sklearn(labels_preds):
    labels, preds = labels_preds
    names = [f"class_{i}" for i in range(NUM_CLASSES)]
    rep = classification_report(confusion_matrix(labels, preds, NUM_CLASSES), names)
    kw = dict(labels=list(range(NUM_CLASSES)), zero_division=0)
    p, r, f, s = skm.precision_recall_fscore_support(labels, preds, **kw)

    assert rep["num_examples"] == len(labels)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds))
    assert [c["name"] for c in rep["per_class"]] == names
    np.testing.assert_allclose([c["precision"] for c in rep["per_class"]], p)
    np.testing.assert_allclose([c["recall"] for c in rep["per_class"]], r)
    np.testing.assert_allclose([c["f1"] for c in rep["per_class"]], f)
    np.testing.assert_array_equal([c["support"] for c in rep["per_class"]], s)
    assert rep["per_class"][NEVER_PREDICTED]["precision"] == 0.0
    assert rep["per_class"][ABSENT_FROM_LABELS]["recall"] == 0.0
    assert rep["macro_precision"] == pytest.approx(skm.precision_score(labels, preds, average="macro", **kw))
    assert rep["macro_recall"] == pytest.approx(skm.recall_score(labels, preds, average="macro", **kw))
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(labels, preds, average="macro", **kw))
    assert rep["weighted_f1"] == pytest.approx(skm.f1_score(labels, preds, average="weighted", **kw))
    assert "top5_accuracy" not in rep


def test_macro_averages_over_the_classes_present_as_sklearn(labels_preds):
    # A test split that lacks a class the run knows (ABSENT: neither a label nor a prediction).
    # scikit-learn's macro averages (labels=None) run over the classes in y_true or y_pred; the
    # absent class used to count as 0 and pulled every macro figure down by 1/C of itself.
    labels, preds = labels_preds
    absent = NUM_CLASSES  # one class more than the split shows
    rep = classification_report(confusion_matrix(labels, preds, NUM_CLASSES + 1))
    assert absent not in labels and absent not in preds
    p, r, f, _ = skm.precision_recall_fscore_support(labels, preds, average="macro", zero_division=0)
    assert rep["macro_precision"] == pytest.approx(p)
    assert rep["macro_recall"] == pytest.approx(r)
    assert rep["macro_f1"] == pytest.approx(f)
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(labels, preds, average="macro", zero_division=0))
    assert rep["weighted_f1"] == pytest.approx(skm.f1_score(labels, preds, average="weighted", zero_division=0))
    # Every class keeps its entry: the absent one with zeros and support 0.
    assert len(rep["per_class"]) == NUM_CLASSES + 1
    assert rep["per_class"][absent] == dict(name=str(absent), precision=0.0, recall=0.0, f1=0.0, support=0)
    # A class only predicted (never a label) still counts, as in sklearn: recall and F1 0.
    assert ABSENT_FROM_LABELS in preds and rep["per_class"][ABSENT_FROM_LABELS]["f1"] == 0.0
    f_present = [c["f1"] for i, c in enumerate(rep["per_class"]) if i != absent]
    assert rep["macro_f1"] == pytest.approx(np.mean(f_present))


def test_report_json_serialisable_with_top5(labels_preds):
    labels, preds = labels_preds
    cm = confusion_matrix(labels, preds, NUM_CLASSES)
    correct = np.arange(len(labels)) % 4 != 0
    from_bools = classification_report(cm, top5_correct=correct)
    from_count = classification_report(cm, top5_correct=np.int64(correct.sum()))
    assert from_bools["top5_accuracy"] == from_count["top5_accuracy"] == pytest.approx(0.75)
    assert json.loads(json.dumps(from_bools)) == from_bools
    assert from_bools["per_class"][0]["name"] == "0"


def test_report_empty_confusion():
    rep = classification_report(np.zeros((3, 3), np.int64), top5_correct=0)
    assert rep["accuracy"] == rep["macro_f1"] == rep["weighted_f1"] == rep["top5_accuracy"] == 0.0
    json.dumps(rep)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_correct_matches_argsort(k):
    rng = np.random.default_rng(k)
    logits = rng.normal(size=(64, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=64)
    got = jax.jit(topk_correct, static_argnums=2)(logits, labels, k)
    top = np.argsort(-logits, axis=-1)[:, :k]
    expected = (top == labels[:, None]).any(axis=-1)
    assert got.shape == (64,) and got.dtype == bool
    np.testing.assert_array_equal(np.asarray(got), expected)
    if k == 1:
        np.testing.assert_array_equal(np.asarray(got), logits.argmax(-1) == labels)
