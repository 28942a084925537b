"""Tests of fer_helpers.metrics, checked against scikit-learn and hand-worked cases."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm

from fer_helpers import metrics

NAMES3 = ["happy", "neutral", "sad"]


def random_labels(seed: int, num_classes: int, gaps: bool) -> tuple[np.ndarray, np.ndarray]:
    """Random (y_true, y_pred); with gaps, class 0 is never a true label and the
    last class is never predicted."""
    rng = np.random.default_rng(seed)
    n = 200
    if gaps:
        y_true = rng.integers(1, num_classes, n)
        y_pred = rng.integers(0, num_classes - 1, n)
    else:
        y_true = rng.integers(0, num_classes, n)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, num_classes, n))
    return y_true, y_pred


CASES = [(seed, k, gaps) for seed in (0, 1, 2) for k in (3, 7) for gaps in (False, True)]


@pytest.mark.parametrize("seed, k, gaps", CASES)
def test_every_metric_matches_sklearn(seed: int, k: int, gaps: bool) -> None:
    y_true, y_pred = random_labels(seed, k, gaps)
    labels = list(range(k))
    cm = metrics.confusion_matrix(y_true, y_pred, k)

    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=labels))
    assert cm.dtype == np.int64

    p, r, f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    np.testing.assert_allclose(metrics.precision_per_class(cm), p)
    np.testing.assert_allclose(metrics.recall_per_class(cm), r)
    np.testing.assert_allclose(metrics.f1_per_class(cm), f)
    assert metrics.accuracy(cm) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        # sklearn warns when y_pred has a class that y_true lacks; that is the point here.
        warnings.simplefilter("ignore")
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    assert metrics.balanced_accuracy(cm) == pytest.approx(balanced)
    weighted = skm.recall_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
    assert metrics.weighted_recall(cm) == pytest.approx(weighted)

    table = metrics.classification_table(cm, [f"c{i}" for i in labels])
    np.testing.assert_allclose(table[["precision", "recall", "f1"]].to_numpy().T, [p, r, f])
    np.testing.assert_array_equal(table["support"], support)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaps_score_zero_and_balanced_accuracy_skips_absent_class(seed: int) -> None:
    y_true, y_pred = random_labels(seed, 7, gaps=True)
    cm = metrics.confusion_matrix(y_true, y_pred, 7)
    recall = metrics.recall_per_class(cm)
    assert metrics.precision_per_class(cm)[6] == 0.0  # class 6 never predicted
    assert recall[0] == 0.0  # class 0 never a true label
    assert metrics.balanced_accuracy(cm) == pytest.approx(recall[1:].mean())


def test_weighted_recall_with_custom_weights() -> None:
    y_true, y_pred = random_labels(5, 7, gaps=False)
    cm = metrics.confusion_matrix(y_true, y_pred, 7)
    weights = np.arange(1.0, 8.0)
    expected = np.average(skm.recall_score(y_true, y_pred, average=None), weights=weights)
    assert metrics.weighted_recall(cm, weights) == pytest.approx(expected)
    equal = metrics.weighted_recall(cm, np.ones(7))
    assert equal == pytest.approx(metrics.balanced_accuracy(cm))


def test_confusion_matrix_rows_are_true_class() -> None:
    # Two true happys: one right, one called neutral. One neutral called sad. One sad right.
    cm = metrics.confusion_matrix([0, 0, 1, 2], [0, 1, 2, 2], 3)
    expected = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(cm, expected)


def test_course_line_exact_format() -> None:
    line = metrics.course_line([0.5, 2 / 3, 1.0], NAMES3, 0.123456)
    assert line == "happy:50.00%, neutral:66.67%, sad:100.00%, total:12.35%"


def test_course_line_from_hand_worked_matrix() -> None:
    # Columns sum to 4, 3, 3; diagonal 3, 2, 2; 7 correct of 10.
    cm = np.array([[3, 1, 0], [1, 2, 1], [0, 0, 2]])
    line = metrics.course_line(metrics.precision_per_class(cm), NAMES3, metrics.accuracy(cm))
    assert line == "happy:75.00%, neutral:66.67%, sad:66.67%, total:70.00%"


def test_course_line_rejects_mismatched_names() -> None:
    with pytest.raises(ValueError, match="2 values but 3 class names"):
        metrics.course_line([0.1, 0.2], NAMES3, 0.3)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([0, 1, 2], [0, 1], "3 labels but y_pred has 2"),
        ([0, 3, 1], [0, 1, 1], "y_true has label 3 at position 1"),
        ([0, 1, 1], [0, -1, 1], "y_pred has label -1 at position 1"),
        ([0.0, 1.0], [0, 1], "integer"),
        ([[0, 1]], [[0, 1]], "1-D"),
    ],
)
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metrics.confusion_matrix(y_true, y_pred, 3)


def test_scores_reject_empty_matrix_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy(np.zeros((3, 3), dtype=np.int64))
    cm = np.eye(3, dtype=np.int64)
    with pytest.raises(ValueError, match="3 weights"):
        metrics.weighted_recall(cm, [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        metrics.weighted_recall(cm, [1.0, -1.0, 1.0])


def test_most_confused_lists_largest_off_diagonal_first() -> None:
    cm = np.array([[5, 1, 0], [2, 6, 0], [0, 4, 3]])
    expected = [("sad", "neutral", 4), ("neutral", "happy", 2), ("happy", "neutral", 1)]
    assert metrics.most_confused(cm, NAMES3) == expected  # zero cells left out
    assert metrics.most_confused(cm, NAMES3, k=2) == expected[:2]


def test_most_confused_matches_brute_force_on_random_labels() -> None:
    y_true, y_pred = random_labels(3, 7, gaps=False)
    cm = metrics.confusion_matrix(y_true, y_pred, 7)
    names = [str(i) for i in range(7)]
    counts = sorted(
        (sum((y_true == i) & (y_pred == j)) for i in range(7) for j in range(7) if i != j),
        reverse=True,
    )
    top = metrics.most_confused(cm, names, k=5)
    assert [c for _, _, c in top] == counts[:5]
    for t, p, c in top:
        assert sum((y_true == int(t)) & (y_pred == int(p))) == c


def test_summary_is_json_ready_and_consistent() -> None:
    y_true, y_pred = random_labels(4, 3, gaps=True)
    summary = metrics.summarize(y_true, y_pred, NAMES3)
    assert json.loads(json.dumps(summary)) == summary  # only plain Python types inside

    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    assert summary["classes"] == NAMES3
    assert summary["confusion_matrix"] == cm.tolist()
    assert summary["accuracy"] == metrics.accuracy(cm)
    assert summary["balanced_accuracy"] == metrics.balanced_accuracy(cm)
    assert summary["weighted_recall"] == metrics.weighted_recall(cm)
    for i, name in enumerate(NAMES3):
        row = summary["per_class"][name]
        assert row["precision"] == metrics.precision_per_class(cm)[i]
        assert row["recall"] == metrics.recall_per_class(cm)[i]
        assert row["f1"] == metrics.f1_per_class(cm)[i]
        assert row["support"] == int((y_true == i).sum())


def test_format_report_holds_the_two_course_lines() -> None:
    y_true, y_pred = random_labels(6, 3, gaps=False)
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    report = metrics.format_report(metrics.summarize(y_true, y_pred, NAMES3))
    lines = report.splitlines()
    precision_line = metrics.course_line(
        metrics.precision_per_class(cm), NAMES3, metrics.accuracy(cm)
    )
    recall_line = metrics.course_line(
        metrics.recall_per_class(cm), NAMES3, metrics.weighted_recall(cm)
    )
    assert lines.index(precision_line) < lines.index(recall_line)
    for name in NAMES3:
        assert any(line.startswith(name) for line in lines[lines.index(recall_line) + 1 :])


# --- edges the mutation run found untested (mutmut, issue 18) -------------------------------------


def test_one_class_is_a_valid_count_and_none_is_refused() -> None:
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 0], [0, 0], 1), [[2]])
    with pytest.raises(ValueError, match="num_classes must be at least 1, got 0"):
        metrics.confusion_matrix([], [], 0)


def test_weighted_recall_needs_images_and_a_positive_weight_sum() -> None:
    with pytest.raises(ValueError, match="empty"):
        metrics.weighted_recall(np.zeros((3, 3), dtype=int))
    cm = np.array([[3, 1], [2, 2]])  # recall 0.75 and 0.5
    with pytest.raises(ValueError, match="positive sum"):
        metrics.weighted_recall(cm, [0.0, 0.0])
    # weights summing to less than 1 are fine: only their ratio counts
    assert metrics.weighted_recall(cm, [0.5, 0.25]) == pytest.approx(
        (0.5 * 0.75 + 0.25 * 0.5) / 0.75
    )
    assert metrics.weighted_recall(cm, [2, 1]) == pytest.approx((2 * 0.75 + 0.5) / 3)


def test_the_table_is_indexed_by_class() -> None:
    table = metrics.classification_table(np.array([[3, 1], [2, 2]]), ["happy", "sad"])
    assert table.index.name == "class" and list(table.index) == ["happy", "sad"]


def test_most_confused_lists_five_pairs_unless_told() -> None:
    cm = np.arange(1, 17).reshape(4, 4)  # 12 off-diagonal mistakes, all different
    names = ["a", "b", "c", "d"]
    assert len(metrics.most_confused(cm, names)) == 5
    assert [count for *_, count in metrics.most_confused(cm, names, k=7)] == [
        15,
        14,
        13,
        12,
        10,
        9,
        8,
    ]
    with pytest.raises(ValueError, match="expected 4 class names, got 3"):
        metrics.most_confused(cm, names[:3])


def test_format_report_lines_by_hand() -> None:
    y_true = [0, 0, 0, 0, 1, 1]
    y_pred = [0, 0, 0, 1, 1, 0]  # happy: precision 3/4, recall 3/4; sad: 1/2, 1/2
    lines = metrics.format_report(metrics.summarize(y_true, y_pred, ["happy", "sad"])).splitlines()
    assert lines[0] == "accuracy per class (precision), total = accuracy:"
    assert lines[1] == "happy:75.00%, sad:50.00%, total:66.67%"
    assert lines[2] == "recall per class, total = weighted recall:"
    assert lines[3] == "happy:75.00%, sad:50.00%, total:66.67%"
    assert lines[4] == "balanced accuracy: 62.50%"
    assert lines[5] == "" and lines[6].split()[0] == "precision"


def test_format_confusion_puts_the_true_class_in_rows_and_the_prediction_in_columns():
    # fear is predicted once but never true; sad is true twice but never predicted.
    y_true = np.array([0, 0, 0, 2, 2])
    y_pred = np.array([0, 1, 0, 0, 0])
    summary = metrics.summarize(y_true, y_pred, ["happy", "fear", "sad"])
    lines = metrics.format_confusion(summary).strip().splitlines()
    assert lines[0] == "confusion matrix (rows: true class, columns: predicted):"
    assert lines[1].split() == ["predicted", "happy", "fear", "sad"]
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[3:]}
    assert rows == {"happy": [2, 1, 0], "fear": [0, 0, 0], "sad": [2, 0, 0]}
    reference = skm.confusion_matrix(y_true, y_pred).tolist()
    assert rows == dict(zip(["happy", "fear", "sad"], reference))


def test_wilson_interval_by_hand_and_against_scipy() -> None:
    # 7 of 10, z = 1.959964: centre (0.7 + 0.19207) / 1.38415 = 0.64449,
    # half 1.95996 / 1.38415 * sqrt(0.021 + 0.0096036) = 0.24772 (worked by hand).
    low, high = metrics.wilson_interval(7, 10)
    assert low == pytest.approx(0.39678, abs=1e-5) and high == pytest.approx(0.89221, abs=1e-5)
    from scipy.stats import binomtest

    for k, n, confidence in [(0, 32, 0.95), (24, 32, 0.95), (32, 32, 0.9), (1530, 2155, 0.99)]:
        expected = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        got = metrics.wilson_interval(k, n, confidence)
        assert got == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_wilson_interval_shrinks_with_more_images_and_refuses_nonsense() -> None:
    small, large = metrics.wilson_interval(24, 32), metrics.wilson_interval(1500, 2000)
    assert small[0] < 0.75 < small[1] and large[0] < 0.75 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 5  # sqrt(2000 / 32) is about 8
    assert metrics.wilson_interval(0, 5)[0] == 0.0 and metrics.wilson_interval(5, 5)[1] == 1.0
    for k, n, confidence in [(1, 0, 0.95), (-1, 5, 0.95), (6, 5, 0.95), (2, 5, 1.0)]:
        with pytest.raises(ValueError):
            metrics.wilson_interval(k, n, confidence)


def _faces_of(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred): one entry per face that the confusion matrix counts."""
    k = len(cm)
    cells = np.repeat(np.arange(k * k), cm.ravel())
    return cells // k, cells % k


def test_bootstrap_interval_matches_resampling_the_faces_themselves() -> None:
    # an asymmetric 3-class matrix with a rare class: the reference draws face indices and
    # scores each draw with scikit-learn, never looking at the confusion matrix
    cm = np.array([[50, 8, 2], [10, 120, 30], [3, 4, 13]])
    y_true, y_pred = _faces_of(cm)
    rng = np.random.default_rng(1)
    reference = []
    for _ in range(2000):
        pick = rng.integers(0, len(y_true), len(y_true))
        reference.append(skm.balanced_accuracy_score(y_true[pick], y_pred[pick]))
    expected = np.percentile(reference, [2.5, 97.5])
    low, high = metrics.bootstrap_interval(cm, draws=2000)
    np.testing.assert_allclose([low, high], expected, atol=0.012)
    assert low < metrics.balanced_accuracy(cm) < high


def test_bootstrap_interval_of_accuracy_agrees_with_wilson() -> None:
    # unequal rows: accuracy (0.74) and balanced accuracy (0.70) differ, so the metric matters
    cm = np.array([[420, 380], [140, 1060]])  # 1,480 of 2,000 right
    low, high = metrics.bootstrap_interval(cm, metrics.accuracy, draws=4000, seed=3)
    wilson = metrics.wilson_interval(1480, 2000)
    np.testing.assert_allclose([low, high], wilson, atol=0.004)
    balanced = metrics.bootstrap_interval(cm, draws=4000, seed=3)  # the default metric
    exact = (420 / 800 + 1060 / 1200) / 2
    assert metrics.balanced_accuracy(cm) == pytest.approx(exact)
    assert abs(sum(balanced) / 2 - exact) < 0.005 < (low + high) / 2 - sum(balanced) / 2
    # near 1 the interval is lopsided: more room below than above, never past 1
    sure = np.array([[495, 5], [0, 500]])
    low, high = metrics.bootstrap_interval(sure, metrics.accuracy)
    assert high <= 1.0 and 0.995 - low > high - 0.995


def test_bootstrap_interval_narrows_with_confidence_and_faces_and_refuses_nonsense() -> None:
    cm = np.array([[40, 10], [5, 45]])
    wide = metrics.bootstrap_interval(cm, confidence=0.99)
    narrow = metrics.bootstrap_interval(cm, confidence=0.8)
    more = metrics.bootstrap_interval(cm * 20)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert more[1] - more[0] < (narrow[1] - narrow[0])
    assert metrics.bootstrap_interval(cm, seed=5) == metrics.bootstrap_interval(cm, seed=5)
    for bad, message in (
        ({"confidence": 1.0}, "confidence must be between 0 and 1, got 1.0"),
        ({"confidence": 0.0}, "confidence must be between 0 and 1, got 0.0"),
        ({"draws": 0}, "draws must be at least 1, got 0"),
    ):
        with pytest.raises(ValueError, match=message):
            metrics.bootstrap_interval(cm, **bad)
    low, high = metrics.bootstrap_interval(cm, draws=1)  # one draw: one score, no spread
    assert low == high
    with pytest.raises(ValueError, match="empty"):
        metrics.bootstrap_interval(np.zeros((2, 2), dtype=int))


@pytest.mark.parametrize(
    "score",
    [
        metrics.accuracy,
        metrics.balanced_accuracy,
        metrics.weighted_recall,
        metrics.bootstrap_interval,
    ],
)
def test_scores_refuse_a_matrix_that_is_not_square_or_holds_nothing(score) -> None:
    for shape in [(2, 3), (3, 2), (4,), (2, 2, 2)]:
        with pytest.raises(ValueError, match=re.escape(f"must be square, got shape {shape}")):
            score(np.ones(shape, dtype=int))
    with pytest.raises(ValueError, match="the confusion matrix is empty"):
        score(np.zeros((3, 3), dtype=int))


@pytest.mark.parametrize("score", [metrics.recall_per_class, metrics.precision_per_class])
def test_per_class_scores_of_an_empty_matrix_are_zero(score) -> None:
    # nothing counted: every ratio is 0/0, reported as 0 (sklearn's zero_division=0)
    np.testing.assert_array_equal(score(np.zeros((3, 3), dtype=int)), np.zeros(3))


def test_a_class_with_a_single_true_face_counts_in_balanced_accuracy() -> None:
    y_true = np.array([0, 0, 0, 1, 2, 2])  # class 1 has exactly one true face, predicted right
    y_pred = np.array([0, 1, 2, 1, 2, 0])
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    assert metrics.balanced_accuracy(cm) == pytest.approx(
        skm.balanced_accuracy_score(y_true, y_pred)
    )
    assert metrics.balanced_accuracy(cm) == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)


def test_confusion_matrix_of_one_face_and_of_none() -> None:
    np.testing.assert_array_equal(
        metrics.confusion_matrix([2], [0], 3), [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    )
    np.testing.assert_array_equal(metrics.confusion_matrix([], [], 3), np.zeros((3, 3)))
    # a single label is checked like many: its range and its type
    with pytest.raises(
        ValueError, match=re.escape("y_true has label 7 at position 0: expected labels 0..6")
    ):
        metrics.confusion_matrix([7], [0], 7)
    with pytest.raises(ValueError, match="y_pred must hold integer class labels"):
        metrics.confusion_matrix([1], [1.0], 7)


def test_wilson_interval_of_a_single_face_and_its_refusals() -> None:
    # one face, right: worked by hand, centre (1 + z²/2) / (1 + z²) and half-width
    # (z²/2) / (1 + z²), so the interval runs from 1 / (1 + z²) to exactly 1
    z = 1.959963984540054
    low, high = metrics.wilson_interval(1, 1)
    assert low == pytest.approx(1 / (1 + z**2)) and high == pytest.approx(1.0)
    low, high = metrics.wilson_interval(0, 1)  # and wrong: the mirror image
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(z**2 / (1 + z**2))
    for args, message in (
        ((0, 0), "n must be at least 1 image, got 0"),
        ((3, 2), "successes must be between 0 and n = 2, got 3"),
        ((-1, 2), "successes must be between 0 and n = 2, got -1"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            metrics.wilson_interval(*args)
    for confidence in (0.0, 1.0):
        with pytest.raises(ValueError, match="confidence"):
            metrics.wilson_interval(1, 2, confidence=confidence)
