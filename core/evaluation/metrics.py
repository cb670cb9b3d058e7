"""Binary classification metrics from 0/1 labels and positive scores: NumPy only, computed as scikit-learn does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.export.model_file import positive

# The threshold a label uses when a model file names none: core.export.model_file.DEFAULT_THRESHOLD.
DEFAULT_THRESHOLD = 0.5
# Binary cross-entropy clips probabilities as Keras does, so the loss here matches model.evaluate's.
LOSS_EPSILON = 1e-7
# Rows a scoring call sends to the model at once: small enough for a progress bar to move, big enough for all cores.
SCORE_CHUNK = 2048
# Curves for a page are drawn through at most this many points: 25,000 would make every slider move ship megabytes.
CURVE_POINTS = 1500


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """labels as int8 0/1 and scores as float64, both 1-D and of one length; ValueError with one line otherwise."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {labels.shape} and {scores.shape}")
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels):,} labels but {len(scores):,} scores")
    if not len(labels):
        raise ValueError("there are no reviews to evaluate")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite numbers")
    return labels.astype(np.int8), scores


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0/0 defined as 0, as scikit-learn's zero_division default does."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


@dataclass(frozen=True)
class ThresholdMetrics:
    """The confusion matrix at one threshold (positive when score >= threshold) and the metrics it gives.

    0/0 is 0: precision with no review predicted positive, recall with no positive review, F1 when both are 0.
    """

    threshold: float
    tp: int  # positive reviews predicted positive
    fp: int  # negative reviews predicted positive
    tn: int  # negative reviews predicted negative
    fn: int  # positive reviews predicted negative

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.n if self.n else 0.0

    @property
    def precision(self) -> float:
        return float(_ratio(self.tp, self.tp + self.fp))

    @property
    def recall(self) -> float:
        return float(_ratio(self.tp, self.tp + self.fn))

    @property
    def f1(self) -> float:
        # 2PR / (P + R) written with counts: 2tp / (2tp + fp + fn), which is 0 exactly when tp is.
        return float(_ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn))

    @property
    def false_positive_rate(self) -> float:
        return float(_ratio(self.fp, self.fp + self.tn))

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
        }


def confusion(labels, scores, threshold: float) -> ThresholdMetrics:
    """The confusion matrix of scores at threshold against labels."""
    labels, scores = _check(labels, scores)
    predicted = positive(scores, threshold)
    truly = labels == 1
    return ThresholdMetrics(
        threshold=float(threshold),
        tp=int(np.sum(predicted & truly)),
        fp=int(np.sum(predicted & ~truly)),
        tn=int(np.sum(~predicted & ~truly)),
        fn=int(np.sum(~predicted & truly)),
    )


@dataclass(frozen=True)
class ThresholdSweep:
    """Both classes' scores sorted once, so that the confusion matrix at any threshold is two binary searches.

    A page can recompute everything at every slider move: a thousand thresholds over 25,000 reviews take well under
    a millisecond.
    """

    positive_scores: np.ndarray  # float64, ascending
    negative_scores: np.ndarray  # float64, ascending

    @classmethod
    def build(cls, labels, scores) -> "ThresholdSweep":
        labels, scores = _check(labels, scores)
        return cls(np.sort(scores[labels == 1]), np.sort(scores[labels == 0]))

    @property
    def positives(self) -> int:
        return len(self.positive_scores)

    @property
    def negatives(self) -> int:
        return len(self.negative_scores)

    def counts(self, thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """tp, fp, tn, fn (int64 arrays shaped like thresholds) with positive meaning score >= threshold in float64,
        core.export.model_file.positive's rule, for many thresholds at once."""
        thresholds = np.asarray(thresholds, dtype=np.float64)
        # searchsorted "left" counts the scores below each threshold: those are predicted negative.
        fn = np.searchsorted(self.positive_scores, thresholds, side="left").astype(np.int64)
        tn = np.searchsorted(self.negative_scores, thresholds, side="left").astype(np.int64)
        return self.positives - fn, self.negatives - tn, tn, fn

    def metrics(self, thresholds) -> dict[str, np.ndarray]:
        """Accuracy, precision, recall, F1 and false-positive rate at every threshold, as arrays (0/0 is 0)."""
        tp, fp, tn, fn = self.counts(thresholds)
        return {
            "accuracy": _ratio(tp + tn, self.positives + self.negatives),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "false_positive_rate": _ratio(fp, fp + tn),
        }

    def at(self, threshold: float) -> ThresholdMetrics:
        tp, fp, tn, fn = (int(value) for value in self.counts(threshold))
        return ThresholdMetrics(float(threshold), tp, fp, tn, fn)


def _binary_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false and true positives at every distinct score, highest first (scikit-learn's
    _binary_clf_curve): tied scores are one threshold, never split."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, labels = scores[order], labels[order]
    last_of_each_value = np.where(np.diff(scores))[0]
    ends = np.r_[last_of_each_value, len(labels) - 1]
    tps = np.cumsum(labels, dtype=np.float64)[ends]
    fps = 1 + ends - tps
    return fps, tps, scores[ends]


def roc_curve(labels, scores, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds, as sklearn.metrics.roc_curve returns them: the first
    point is (0, 0) at threshold inf; with drop_intermediate, points on a straight line between others are dropped.
    With one class only, the rate of the missing class is NaN (0/0), as in scikit-learn."""
    labels, scores = _check(labels, scores)
    fps, tps, thresholds = _binary_curve(labels, scores)
    if drop_intermediate and len(fps) > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thresholds


def roc_auc(labels, scores) -> float | None:
    """The area under the ROC curve (trapezoids, ties count half, as roc_auc_score); None with one class only."""
    labels, _ = _check(labels, scores)
    if labels.min() == labels.max():
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds as sklearn.metrics.precision_recall_curve returns them: thresholds ascending,
    one more precision and recall than thresholds, ending at precision 1 and recall 0. Precision with no review
    predicted positive is 0; with no positive review recall is 1 everywhere, as in scikit-learn."""
    labels, scores = _check(labels, scores)
    fps, tps, thresholds = _binary_curve(labels, scores)
    precision = _ratio(tps, tps + fps)
    recall = np.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(labels, scores) -> float | None:
    """Average precision as sklearn's average_precision_score: sum over thresholds of (R_n - R_n-1) * P_n, no
    interpolation. None when there is no positive review (scikit-learn warns and returns 0)."""
    labels, scores = _check(labels, scores)
    if not labels.any():
        return None
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def thinned(*arrays: np.ndarray, points: int = CURVE_POINTS) -> list[np.ndarray]:
    """At most points evenly spaced points of a curve given as arrays of one length, both ends kept."""
    count = len(arrays[0])
    if count <= points:
        return list(arrays)
    keep = np.unique(np.linspace(0, count - 1, points).round().astype(int))
    return [array[keep] for array in arrays]


@dataclass(frozen=True, eq=False)
class EvaluationCurves:
    """What a page draws of scores against labels: the sweep for any threshold, both curves thinned to at most
    CURVE_POINTS points, and the areas (None where undefined: one class only, or no positive review)."""

    sweep: ThresholdSweep
    false_positive_rate: np.ndarray  # the ROC curve's x
    true_positive_rate: np.ndarray  # the ROC curve's y (recall)
    precision: np.ndarray  # the precision-recall curve's y
    recall: np.ndarray  # the precision-recall curve's x
    roc_auc: float | None
    average_precision: float | None


def evaluation_curves(labels, scores, points: int = CURVE_POINTS) -> EvaluationCurves:
    """The threshold sweep, the ROC and precision-recall curves (at most points points each) and their areas."""
    false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    false_positive_rate, true_positive_rate = thinned(false_positive_rate, true_positive_rate, points=points)
    recall, precision = thinned(recall, precision, points=points)
    return EvaluationCurves(
        sweep=ThresholdSweep.build(labels, scores),
        false_positive_rate=false_positive_rate,
        true_positive_rate=true_positive_rate,
        precision=precision,
        recall=recall,
        roc_auc=roc_auc(labels, scores),
        average_precision=average_precision(labels, scores),
    )


def confident_mistakes(labels, scores, threshold: float, limit: int | None = None) -> tuple[int, np.ndarray]:
    """How many reviews are misclassified at threshold, and the indices of the most confident of them (at most
    limit), the most confident first: a negative review scored 0.99 is the most confident mistake there is."""
    labels, scores = _check(labels, scores)
    wrong = np.flatnonzero(positive(scores, threshold) != (labels == 1))
    # How far the score is from the truth; ties keep the split's order.
    distance = np.abs(scores[wrong] - labels[wrong])
    return len(wrong), wrong[np.argsort(-distance, kind="stable")][:limit]


def log_loss(labels, scores) -> float:
    """Mean binary cross-entropy with probabilities clipped to [1e-7, 1 - 1e-7], as Keras's evaluate reports it."""
    labels, scores = _check(labels, scores)
    clipped = np.clip(scores, LOSS_EPSILON, 1 - LOSS_EPSILON)
    return float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))


@dataclass(frozen=True)
class EvaluationReport:
    """What evaluate reports on a split: counts, loss, the curves' summaries and the metrics at three thresholds."""

    n: int
    positives: int
    negatives: int
    loss: float  # binary cross-entropy, as Keras computes it
    roc_auc: float | None  # None when the split holds one class only
    average_precision: float | None  # None when the split holds no positive review
    at_threshold: ThresholdMetrics  # at the threshold asked for (the file's unless another was given)
    at_file_threshold: ThresholdMetrics  # at the threshold stored in the model file (0.5 for a Keras model)
    at_default_threshold: ThresholdMetrics  # at 0.5

    @property
    def threshold(self) -> float:
        return self.at_threshold.threshold

    @property
    def accuracy(self) -> float:
        return self.at_threshold.accuracy

    def to_dict(self) -> dict:
        """JSON-ready: the headline accuracy, loss and n first (as plain evaluate prints), then the rest."""
        return {
            "accuracy": self.accuracy,
            "loss": self.loss,
            "n": self.n,
            "positives": self.positives,
            "negatives": self.negatives,
            "roc_auc": self.roc_auc,
            "average_precision": self.average_precision,
            "threshold": self.threshold,
            "at_threshold": self.at_threshold.to_dict(),
            "at_file_threshold": self.at_file_threshold.to_dict(),
            "at_default_threshold": self.at_default_threshold.to_dict(),
        }


def evaluation_report(
    labels, scores, threshold: float | None = None, file_threshold: float = DEFAULT_THRESHOLD
) -> EvaluationReport:
    """The report of scores against labels at threshold (default: file_threshold), at file_threshold and at 0.5."""
    labels, scores = _check(labels, scores)
    sweep = ThresholdSweep.build(labels, scores)
    return EvaluationReport(
        n=len(labels),
        positives=sweep.positives,
        negatives=sweep.negatives,
        loss=log_loss(labels, scores),
        roc_auc=roc_auc(labels, scores),
        average_precision=average_precision(labels, scores),
        at_threshold=sweep.at(file_threshold if threshold is None else threshold),
        at_file_threshold=sweep.at(file_threshold),
        at_default_threshold=sweep.at(DEFAULT_THRESHOLD),
    )


def score_split(predictor, split, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """The positive probability of every review of split (encoded with predictor's vocabulary), float32, in order;
    progress(fraction) hears how far scoring has got."""
    # Unpadded id lists: the Predictor pads each batch only as far as the file needs (its longest review when the
    # file skips padding), instead of every review to sequence_length first.
    sequences = [split.ids(row) for row in range(len(split))]
    rows = len(sequences)
    scores = np.zeros(rows, dtype=np.float32)
    for start in range(0, rows, SCORE_CHUNK):
        stop = min(start + SCORE_CHUNK, rows)
        scores[start:stop] = predictor.sequence_probabilities(sequences[start:stop])
        if progress is not None:
            progress(stop / rows)
    return scores


def split_summary(predictor, split) -> dict:
    """Accuracy at the file's threshold, binary cross-entropy and count of predictor's scores on a split encoded with
    its vocabulary, as Keras's evaluate computes them: {"accuracy", "loss", "n"}."""
    if not len(split):
        raise ValueError("there are no test reviews to evaluate on")
    scores = score_split(predictor, split)
    labels = split.labels
    correct = positive(scores, predictor.metadata.threshold) == (labels == 1)
    return {"accuracy": float(np.mean(correct)), "loss": log_loss(labels, scores), "n": len(split)}
