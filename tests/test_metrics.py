"""core.evaluation.metrics against scikit-learn on fixed and random scores, ties and one-class splits included."""

import json
import time
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from core.evaluation import metrics

# Scores from a model are float32; ties are common after rounding, and whole splits can hold one class.
_RANDOM = np.random.default_rng(42)
CASES = {
    "fixed": ([0, 0, 1, 1, 0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.7, 0.9, 0.6, 0.2]),
    "ties": ([0, 1, 1, 0, 1, 0, 0, 1, 1, 0], [0.5, 0.5, 0.2, 0.2, 0.9, 0.9, 0.1, 0.5, 0.7, 0.7]),
    "all scores equal": ([0, 1, 1, 0, 1], [0.5] * 5),
    "random": (_RANDOM.integers(0, 2, 500), _RANDOM.random(500).astype(np.float32)),
    "random, rounded (many ties)": (_RANDOM.integers(0, 2, 2000), np.round(_RANDOM.random(2000), 2)),
    "informative": (
        labels := _RANDOM.integers(0, 2, 3000),
        np.clip(labels * 0.3 + _RANDOM.normal(0.35, 0.2, 3000), 0, 1).astype(np.float32),
    ),
    "perfect": ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]),
    "inverted": ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]),
}
ONE_CLASS = {
    "only negatives": ([0, 0, 0, 0], [0.1, 0.5, 0.5, 0.9]),
    "only positives": ([1, 1, 1], [0.2, 0.2, 0.7]),
}
THRESHOLDS = [0.0, 0.05, 0.2, 0.35, 0.5, 0.5000001, 0.7, 0.9, 0.95, 1.0]


def _quiet(function, *args, **kwargs):
    """scikit-learn warns on one-class input and zero division; the value is what is compared."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.fixture(params=list(CASES) + list(ONE_CLASS))
def case(request):
    labels, scores = {**CASES, **ONE_CLASS}[request.param]
    return np.asarray(labels), np.asarray(scores)


@pytest.mark.parametrize("drop_intermediate", [True, False])
def test_roc_curve_matches_scikit_learn(case, drop_intermediate):
    labels, scores = case
    ours = metrics.roc_curve(labels, scores, drop_intermediate=drop_intermediate)
    theirs = _quiet(sk.roc_curve, labels, scores, drop_intermediate=drop_intermediate)
    for mine, expected in zip(ours, theirs):
        np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-12, equal_nan=True)


def test_roc_auc_and_average_precision_match_scikit_learn(case):
    labels, scores = case
    one_class = labels.min() == labels.max()
    if one_class:
        # scikit-learn warns and answers NaN; ours says "undefined" as None, which JSON can hold.
        assert np.isnan(_quiet(sk.roc_auc_score, labels, scores)) and metrics.roc_auc(labels, scores) is None
    else:
        assert metrics.roc_auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    if not labels.any():
        # No positive review: scikit-learn warns and answers 0; ours is undefined.
        assert _quiet(sk.average_precision_score, labels, scores) == 0.0
        assert metrics.average_precision(labels, scores) is None
    else:
        expected = _quiet(sk.average_precision_score, labels, scores)
        assert metrics.average_precision(labels, scores) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_curve_matches_scikit_learn(case):
    labels, scores = case
    ours = metrics.precision_recall_curve(labels, scores)
    theirs = _quiet(sk.precision_recall_curve, labels, scores)
    for mine, expected in zip(ours, theirs):
        np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-12)


def test_confusion_and_rates_at_a_threshold_match_scikit_learn(case):
    labels, scores = case
    sweep = metrics.ThresholdSweep.build(labels, scores)
    for threshold in THRESHOLDS:
        predicted = (scores >= threshold).astype(int)
        tn, fp, fn, tp = sk.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
        for result in (metrics.confusion(labels, scores, threshold), sweep.at(threshold)):
            assert (result.tp, result.fp, result.tn, result.fn) == (tp, fp, tn, fn)
            assert result.accuracy == pytest.approx(sk.accuracy_score(labels, predicted))
            # 0/0 is 0, which is scikit-learn's zero_division=0.
            assert result.precision == pytest.approx(sk.precision_score(labels, predicted, zero_division=0))
            assert result.recall == pytest.approx(sk.recall_score(labels, predicted, zero_division=0))
            assert result.f1 == pytest.approx(sk.f1_score(labels, predicted, zero_division=0))


def test_the_vectorised_sweep_equals_one_threshold_at_a_time(case):
    labels, scores = case
    sweep = metrics.ThresholdSweep.build(labels, scores)
    grid = np.linspace(0, 1, 101)
    table = sweep.metrics(grid)
    tp, fp, tn, fn = sweep.counts(grid)
    for index, threshold in enumerate(grid):
        one = metrics.confusion(labels, scores, threshold)
        assert (tp[index], fp[index], tn[index], fn[index]) == (one.tp, one.fp, one.tn, one.fn)
        for name in ("accuracy", "precision", "recall", "f1", "false_positive_rate"):
            assert table[name][index] == pytest.approx(getattr(one, name)), name


def test_the_sweep_is_fast_enough_for_a_slider():
    generator = np.random.default_rng(0)
    labels, scores = generator.integers(0, 2, 25_000), generator.random(25_000).astype(np.float32)
    sweep = metrics.ThresholdSweep.build(labels, scores)
    started = time.perf_counter()
    table = sweep.metrics(np.linspace(0, 1, 1001))
    elapsed = time.perf_counter() - started
    assert len(table["f1"]) == 1001
    assert elapsed < 0.05, f"1,001 thresholds over 25,000 reviews took {elapsed * 1000:.1f} ms"


def test_zero_division_cases_are_defined_as_zero():
    nothing_predicted = metrics.confusion([0, 1, 1], [0.1, 0.2, 0.3], 0.9)
    assert (nothing_predicted.precision, nothing_predicted.recall, nothing_predicted.f1) == (0.0, 0.0, 0.0)
    no_positives = metrics.confusion([0, 0], [0.1, 0.9], 0.5)
    assert (no_positives.recall, no_positives.precision, no_positives.f1, no_positives.accuracy) == (0.0, 0.0, 0.0, 0.5)
    all_right = metrics.confusion([0, 0], [0.1, 0.2], 0.5)
    assert (all_right.accuracy, all_right.f1, all_right.false_positive_rate) == (1.0, 0.0, 0.0)


def test_hand_computed_fixed_example():
    labels, scores = CASES["fixed"]
    # At 0.5: predicted positive 0.8, 0.7, 0.9, 0.6 -> tp 3 (0.8, 0.9, 0.6), fp 1 (0.7); fn 1 (0.35), tn 3.
    result = metrics.confusion(labels, scores, 0.5)
    assert (result.tp, result.fp, result.tn, result.fn) == (3, 1, 3, 1)
    assert (result.accuracy, result.precision, result.recall, result.f1) == (0.75, 0.75, 0.75, 0.75)
    # 16 positive-negative pairs; the positive scores higher in all but 0.35 < 0.4 and 0.35 < 0.7 and 0.6 < 0.7.
    assert metrics.roc_auc(labels, scores) == pytest.approx(13 / 16)


def test_log_loss_is_keras_binary_cross_entropy():
    labels, scores = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.4])
    assert metrics.log_loss(labels, scores) == pytest.approx(sk.log_loss(labels, scores))
    # A score of exactly 0 for a positive is clipped to 1e-7, as Keras does, not infinite.
    assert metrics.log_loss([1], [0.0]) == pytest.approx(-np.log(1e-7))


def test_report_holds_three_thresholds_and_is_plain_json():
    labels, scores = CASES["informative"]
    report = metrics.evaluation_report(labels, scores, threshold=0.62, file_threshold=0.45)
    assert (report.threshold, report.at_file_threshold.threshold, report.at_default_threshold.threshold) == (
        0.62,
        0.45,
        0.5,
    )
    assert report.accuracy == metrics.confusion(labels, scores, 0.62).accuracy
    assert (report.n, report.positives + report.negatives) == (3000, 3000)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, scores))
    assert data["at_threshold"]["tp"] + data["at_threshold"]["fn"] == report.positives
    default = metrics.evaluation_report(labels, scores, file_threshold=0.45)
    assert default.threshold == 0.45, "without a threshold the file's is used"
    one_class = metrics.evaluation_report([0, 0, 0], [0.2, 0.4, 0.9])
    assert json.loads(json.dumps(one_class.to_dict(), allow_nan=False))["roc_auc"] is None


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1], [0.5], "2 labels but 1 scores"),
        ([], [], "no reviews"),
        ([0, 2], [0.1, 0.2], "labels must be 0"),
        ([0, 1], [0.1, float("nan")], "scores must be finite"),
        ([[0, 1]], [[0.1, 0.2]], "must be 1-D"),
    ],
)
def test_bad_input_is_one_clear_line(labels, scores, message):
    with pytest.raises(ValueError, match=message) as raised:
        metrics.evaluation_report(labels, scores)
    assert "\n" not in str(raised.value)


def test_thinned_keeps_both_ends_and_at_most_the_points_asked_for():
    x, y = np.arange(5001), np.arange(5001) * 2
    thin_x, thin_y = metrics.thinned(x, y, points=100)
    assert len(thin_x) == len(thin_y) <= 100
    assert (thin_x[0], thin_x[-1], thin_y[-1]) == (0, 5000, 10000)
    np.testing.assert_array_equal(thin_y, thin_x * 2)  # the same points of both arrays
    short = np.arange(10.0)
    assert metrics.thinned(short, points=100)[0] is short


@pytest.mark.parametrize("case", CASES)
def test_evaluation_curves_are_the_curves_thinned(case):
    labels, scores = CASES[case]
    curves = metrics.evaluation_curves(labels, scores, points=50)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    assert len(curves.false_positive_rate) <= 50 and len(curves.recall) <= 50
    if len(fpr) <= 50:
        np.testing.assert_array_equal(curves.false_positive_rate, fpr)
        np.testing.assert_array_equal(curves.true_positive_rate, tpr)
    assert (curves.recall[0], curves.recall[-1]) == (recall[0], recall[-1])
    assert (curves.precision[0], curves.precision[-1]) == (precision[0], precision[-1])
    assert curves.roc_auc == metrics.roc_auc(labels, scores)
    assert curves.average_precision == metrics.average_precision(labels, scores)
    assert curves.sweep.at(0.5) == metrics.confusion(labels, scores, 0.5)


@pytest.mark.parametrize("case", CASES)
def test_confident_mistakes_are_every_mistake_furthest_from_the_truth_first(case):
    labels, scores = (np.asarray(values) for values in CASES[case])
    for threshold in (0.3, 0.5, 0.8):
        count, shown = metrics.confident_mistakes(labels, scores, threshold)
        wrong = (scores.astype(np.float64) >= threshold) != (labels == 1)
        assert count == wrong.sum() and sorted(shown.tolist()) == np.flatnonzero(wrong).tolist()
        distance = np.abs(scores[shown].astype(np.float64) - labels[shown])
        assert distance.tolist() == sorted(distance.tolist(), reverse=True)
        _, first = metrics.confident_mistakes(labels, scores, threshold, limit=3)
        assert first.tolist() == shown[:3].tolist()


def test_one_rule_from_score_to_label_at_the_edge_of_float32():
    """core.export.model_file.positive is the rule the Predictor's labels, the confusion matrix, the sweep and the
    mistakes all follow: a float32 score against a float64 threshold, compared in float64. float32(0.3) is 0.30000001,
    above the threshold 0.3, so positive; float32(0.3)'s float64 value as threshold takes it exactly (>=)."""
    from core.export.model_file import label_names, positive

    below, at, above = np.nextafter(np.float32(0.3), np.float32(0)), np.float32(0.3), np.nextafter(np.float32(0.3), 1)
    scores = np.array([below, at, above, 0.0, 1.0], dtype=np.float32)
    labels = np.array([1, 0, 1, 0, 1])
    for threshold, wanted in ((0.3, [False, True, True, False, True]), (float(at), [False, True, True, False, True]),
                              (float(above), [False, False, True, False, True])):
        assert positive(scores, threshold).tolist() == wanted
        assert [float(score) >= threshold for score in scores] == wanted  # what a caller reading one score would do
        assert label_names(scores, threshold, ("neg", "pos")) == ["pos" if flag else "neg" for flag in wanted]
        one = metrics.confusion(labels, scores, threshold)
        assert one.tp + one.fp == sum(wanted)
        assert metrics.ThresholdSweep.build(labels, scores).at(threshold) == one
        count, _ = metrics.confident_mistakes(labels, scores, threshold)
        assert count == int(np.sum(np.array(wanted) != (labels == 1)))
