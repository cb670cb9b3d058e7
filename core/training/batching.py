"""What fit reads: shuffled training batches and the validation batches, length-bucketed for masked models."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A masked model's batch is cut to its longest review rounded up to a step of sequence_length / MAX_WIDTHS, so a
# training compiles at most this many input widths (XLA compiles once a width).
MAX_WIDTHS = 10
# Reviews are sorted by length within pools of this many batches: batches of similar lengths, yet each epoch's
# batches mix different reviews (a sort over the whole epoch would give the same batches every epoch). Four, not more:
# batches of ever more alike lengths cost the seed's peak validation accuracy (eight seeds of its 10-epoch training on
# the whole archive: 0.845-0.864 with pools of 4, 0.834-0.858 with pools of 32, higher with 4 for every seed; full
# rows 0.844-0.866), for 273 columns a batch on average against 228 (the reviews' own mean: 219).
POOL_BATCHES = 4
# Batches run this many at a time inside one compiled call: the same steps, without Python between them.
STEPS_PER_EXECUTION = 8


def validation_start(reviews: int, validation_split: float) -> int:
    """Where Keras's validation_split cuts: reviews before it train, the rest validate."""
    return int(math.floor(reviews * (1.0 - validation_split)))


def review_widths(rows: np.ndarray, padding: str) -> np.ndarray:
    """Columns of each padded row that are not padding: its review's length within the row (at least 1)."""
    filled = rows != 0
    columns = rows.shape[1]
    if padding == "pre":
        # The review starts at the first non-zero id; a row of zeros keeps one column.
        first = np.where(filled.any(axis=1), filled.argmax(axis=1), columns - 1)
        return (columns - first).astype(np.int64)
    last = np.where(filled.any(axis=1), columns - filled[:, ::-1].argmax(axis=1), 1)
    return last.astype(np.int64)


def bucket_width(longest: int, sequence_length: int) -> int:
    """The width a batch whose longest review has longest ids is cut to: one of at most MAX_WIDTHS values."""
    step = math.ceil(sequence_length / MAX_WIDTHS)
    return min(sequence_length, max(1, math.ceil(longest / step)) * step)


def cut(rows: np.ndarray, width: int, padding: str) -> np.ndarray:
    """The rows without their padding columns beyond width (pre-padded rows keep their last columns)."""
    if width >= rows.shape[1]:
        return rows
    return rows[:, rows.shape[1] - width :] if padding == "pre" else rows[:, :width]


def training_order(reviews: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch's batches of review indices, every review once, shuffled as Keras's fit does (seeded per epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(reviews)
    return [order[start : start + batch_size] for start in range(0, reviews, batch_size)]


def bucketed_order(widths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """One epoch's batches, every review once: shuffled, sorted by length within pools, batch order shuffled.

    As many batches as training_order gives (only the very last one can be short), so steps per epoch stay the same.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(widths))
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        members = members[np.argsort(widths[members], kind="stable")]
        batches += [members[first : first + batch_size] for first in range(0, len(members), batch_size)]
    # The short batch stays last, as in Keras's fit.
    head = [batches[index] for index in rng.permutation(len(batches) - 1)] if len(batches) > 1 else []
    return head + batches[-1:]


def validation_order(widths: np.ndarray | None, reviews: int, batch_size: int) -> list[np.ndarray]:
    """The validation reviews' batches: in order, or by length when widths are given (the loss is a mean over
    reviews, so the order changes nothing)."""
    order = np.argsort(widths, kind="stable") if widths is not None else np.arange(reviews)
    return [order[start : start + batch_size] for start in range(0, reviews, batch_size)]


@dataclass
class ReviewBatches:
    """Padded rows and labels cut into batches; bucketed means each batch is cut to its longest review's width
    (full_rows: batched the same way, rows left full, every batch batch_size rows with row weights)."""

    rows: np.ndarray  # int32 (reviews, sequence_length)
    labels: np.ndarray  # float32 (reviews,)
    batch_size: int
    padding: str  # where the rows' padding is: "pre" or "post"
    bucketed: bool  # only for masked models: padded steps change nothing there, so cutting them is the same maths
    # Bucketed batches in the same order, their rows left full: for a model that skips the padding columns itself
    # (core.training.rnn_span), so one shape is compiled rather than one a width. The short last batch is filled up
    # with rows of pads, and every batch comes with row weights (1 a review, 0 a filler): the model must weigh its
    # rows as core.training.pad_start's train and test steps do (a mean over the reviews), so that batch's loss and
    # metrics are those of its reviews alone. One shape, one program, for training and validation alike.
    full_rows: bool = False
    seed: int | None = None  # shuffles every epoch when set (training); None keeps the order (validation)
    # The epoch a pass shuffles for, asked when the pass begins; without it, passes are counted from 0. fit_data
    # reads the optimizer's step count: tf.distribute starts an extra pass to look at the data, so counting passes
    # would shuffle differently under a strategy, and a resumed run starts at its own epoch.
    epoch_source: Callable[[], int] | None = None

    def __post_init__(self) -> None:
        self.widths = review_widths(self.rows, self.padding) if self.bucketed else None
        self.passes = 0

    @property
    def steps(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def order(self) -> list[np.ndarray]:
        """The next pass's batches of review indices (a training pass moves on to the next epoch's shuffle)."""
        if self.seed is None:
            return validation_order(self.widths, len(self.labels), self.batch_size)
        epoch = self.epoch_source() if self.epoch_source is not None else self.passes
        self.passes += 1
        if self.bucketed:
            return bucketed_order(self.widths, self.batch_size, self.seed, epoch)
        return training_order(len(self.labels), self.batch_size, self.seed, epoch)

    def widths_of(self, order: list[np.ndarray]) -> list[int]:
        """The width each batch of order is cut to (the full rows' when not bucketed, or full_rows)."""
        columns = self.rows.shape[1]
        if not self.bucketed or self.full_rows:
            return [columns] * len(order)
        widths = [bucket_width(int(self.widths[indices].max()), columns) for indices in order]
        if len(order[-1]) < self.batch_size:
            # The short last batch keeps its full rows: one more shape to compile in a training, not one per width.
            widths[-1] = columns
        return widths

    def batches(self):
        """The next pass's (ids, labels) batches, in NumPy: what dataset() yields, for tests and tools ((ids, labels,
        row weights) with full_rows)."""
        order = self.order()
        for indices, width in zip(order, self.widths_of(order)):
            ids, labels = cut(self.rows[indices], width, self.padding), self.labels[indices]
            if not self.full_rows:
                yield ids, labels
                continue
            missing = self.batch_size - len(indices)
            weights = np.concatenate([np.ones(len(indices), "float32"), np.zeros(missing, "float32")])
            yield np.pad(ids, [(0, missing), (0, 0)]), np.pad(labels, (0, missing)), weights

    def dataset(self):
        """A tf.data.Dataset of the batches, a new pass (and shuffle) each time it is read, its length known.

        Python only makes each pass's order (indices and a width a batch); TensorFlow gathers and cuts the rows,
        outside the interpreter's lock, so the input keeps up with an XLA-compiled step.
        """
        import tensorflow as tf

        rows, labels = tf.constant(self.rows), tf.constant(self.labels)
        columns, pre = self.rows.shape[1], self.padding == "pre"

        def plan():
            order = self.order()
            yield from zip(order, self.widths_of(order))

        def gather(indices, width):
            batch, batch_labels = tf.gather(rows, indices), tf.gather(labels, indices)
            if self.full_rows:  # filled up to batch_size rows, the fillers weighing 0
                missing = self.batch_size - tf.shape(indices)[0]
                weights = tf.pad(tf.ones_like(batch_labels), [[0, missing]])
                batch = tf.ensure_shape(tf.pad(batch, [[0, missing], [0, 0]]), (self.batch_size, columns))
                batch_labels = tf.ensure_shape(tf.pad(batch_labels, [[0, missing]]), (self.batch_size,))
                return batch, batch_labels, tf.ensure_shape(weights, (self.batch_size,))
            if self.bucketed:
                batch = batch[:, columns - width :] if pre else batch[:, :width]
            return batch, batch_labels

        signature = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.int32))
        data = tf.data.Dataset.from_generator(plan, output_signature=signature).map(gather)
        # Known length: Keras then counts steps from the first epoch on (progress bars, steps_per_epoch).
        data = data.apply(tf.data.experimental.assert_cardinality(self.steps))
        options = tf.data.Options()
        # Batches are made here, not read from files: several workers split each batch between them.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        # Nothing here to tune (one generator, one map, a fixed prefetch), and tf.data's autotuning thread held up
        # the end of each pass: Keras drops an iterator every epoch, and the main thread waited for that thread,
        # 1-4 s at the start of some epochs (py-spy: ~IteratorResource waiting on it; 5,000 reviews, spans). Off,
        # every epoch's first 8 steps take 0.4-0.5 s as the others do (bench/pad_start_speed.py).
        options.autotune.enabled = False
        return data.with_options(options).prefetch(2)


def fit_batches(
    rows,
    labels,
    batch_size: int,
    validation_split: float,
    *,
    padding: str,
    bucketed: bool,
    seed: int,
    model=None,
    full_rows: bool = False,
):
    """Training and validation ReviewBatches, the validation reviews taken from the end as Keras's validation_split.

    The validation ReviewBatches is None without a split. With a compiled model, each training pass shuffles for
    the epoch its optimizer has reached (every epoch has the same number of steps).
    """
    labels = np.asarray(labels, dtype="float32")
    cut_at = validation_start(len(labels), validation_split) if validation_split else len(labels)
    train = ReviewBatches(rows[:cut_at], labels[:cut_at], batch_size, padding, bucketed, full_rows=full_rows, seed=seed)
    if model is not None:
        train.epoch_source = lambda: round(int(model.optimizer.iterations.numpy()) / train.steps)
    validation = None
    if cut_at < len(labels):
        validation = ReviewBatches(rows[cut_at:], labels[cut_at:], batch_size, padding, bucketed, full_rows=full_rows)
    return train, validation
