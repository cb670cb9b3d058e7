"""The input pipeline keeps fit's maths: each review once an epoch, Keras's validation rows, cut batches' gradients."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from core.training import batching
from core.training.batching import MAX_WIDTHS, ReviewBatches, bucket_width, cut, fit_batches, review_widths
from core.config import ModelConfig, RecurrentLayerConfig, TrainConfig
from core.data.splits import Split
from core.training.batching import validation_start
from core.training.trainer import fit_data, steps_per_epoch


def padded_reviews(count: int, sequence_length: int, padding: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sequences = [
        [1, *rng.integers(2, 50, size=int(rng.integers(0, 2 * sequence_length))).tolist()] for _ in range(count)
    ]
    return Split.from_lists(sequences, np.zeros(count)).padded(sequence_length, padding, padding)


def test_review_widths_count_the_columns_after_the_padding():
    rows = np.array([[0, 0, 1, 5], [1, 2, 3, 4], [0, 0, 0, 0], [0, 3, 0, 7]])
    assert review_widths(rows, "pre").tolist() == [2, 4, 1, 3]  # an id 0 inside a review is not padding
    assert review_widths(rows[:, ::-1], "post").tolist() == [2, 4, 1, 3]


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_a_cut_removes_padding_only_and_widths_are_bounded(padding):
    rows = padded_reviews(700, 97, padding)
    widths = review_widths(rows, padding)
    made = set()
    for indices in batching.bucketed_order(widths, 32, seed=3, epoch=0):
        width = bucket_width(int(widths[indices].max()), rows.shape[1])
        made.add(width)
        kept = cut(rows[indices], width, padding)
        assert kept.shape == (len(indices), width)
        # Every non-padding id survives, in order: the cut rows padded back are the full rows.
        back = np.zeros_like(rows[indices])
        if padding == "pre":
            back[:, rows.shape[1] - width :] = kept
        else:
            back[:, :width] = kept
        np.testing.assert_array_equal(back, rows[indices])
    assert 1 < len(made) <= MAX_WIDTHS


@pytest.mark.parametrize("bucketed", [False, True])
@pytest.mark.parametrize("reviews,batch_size", [(1000, 128), (4000, 128), (129, 128), (37, 5), (5, 8)])
def test_one_epoch_sees_every_training_review_exactly_once(bucketed, reviews, batch_size):
    rows = padded_reviews(reviews, 50, "pre")
    labels = np.arange(reviews, dtype="float32")  # a label that names its review
    data = ReviewBatches(rows, labels, batch_size, "pre", bucketed, seed=1337)
    epochs = []
    for _ in range(3):
        batches = list(data.batches())
        seen = np.concatenate([batch_labels for _, batch_labels in batches]).astype(int)
        assert sorted(seen.tolist()) == list(range(reviews))
        assert len(batches) == data.steps == math.ceil(reviews / batch_size)
        # Only the last batch may be short, as in fit.
        assert all(len(batch_labels) == batch_size for _, batch_labels in batches[:-1])
        for ids, batch_labels in batches:  # each label still travels with its own review
            np.testing.assert_array_equal(ids, cut(rows[batch_labels.astype(int)], ids.shape[1], "pre"))
        epochs.append(seen.tolist())
    if reviews > batch_size:
        assert epochs[0] != epochs[1] != epochs[2], "every epoch must shuffle anew"
    again = ReviewBatches(rows, labels, batch_size, "pre", bucketed, seed=1337)
    assert np.concatenate([b for _, b in again.batches()]).astype(int).tolist() == epochs[0]


@pytest.mark.parametrize("reviews,split", [(1000, 0.2), (999, 0.2), (37, 0.3), (10, 0.15), (5000, 0.2)])
def test_the_validation_reviews_are_kerass_validation_split_rows(reviews, split):
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    rows = padded_reviews(reviews, 20, "pre")
    labels = np.arange(reviews, dtype="float32")
    (keras_rows, keras_labels), (keras_val_rows, keras_val_labels) = train_validation_split(
        (rows, labels), validation_split=split
    )
    for bucketed in (False, True):
        training, validation = fit_batches(rows, labels, 8, split, padding="pre", bucketed=bucketed, seed=1)
        assert sorted(np.concatenate([b for _, b in validation.batches()]).tolist()) == keras_val_labels.tolist()
        assert sorted(np.concatenate([b for _, b in training.batches()]).tolist()) == keras_labels.tolist()
        np.testing.assert_array_equal(validation.rows, keras_val_rows)
    assert training.steps == steps_per_epoch(reviews, TrainConfig(batch_size=8, validation_split=split))


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("bucketed", [False, True])
def test_the_dataset_yields_the_numpy_batches(padding, bucketed):
    rows = padded_reviews(300, 40, padding)
    labels = np.arange(300, dtype="float32")
    data = ReviewBatches(rows, labels, 32, padding, bucketed, seed=5, epoch_source=lambda: 2)
    expected = list(data.batches())
    made = [(ids.numpy(), batch_labels.numpy()) for ids, batch_labels in data.dataset()]
    assert len(made) == len(expected) == data.steps
    for (ids, batch_labels), (expected_ids, expected_labels) in zip(made, expected):
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(batch_labels, expected_labels)


def test_no_validation_split_trains_on_everything():
    rows = padded_reviews(50, 20, "pre")
    training, validation = fit_batches(rows, np.zeros(50), 8, 0.0, padding="pre", bucketed=True, seed=1)
    assert validation is None and len(training.labels) == 50


def test_fit_reads_datasets_for_cut_batches_and_arrays_for_full_rows_on_one_device():
    rows = padded_reviews(300, 40, "pre")
    labels = np.ones(300, dtype="float32")
    train_config = TrainConfig(batch_size=32)
    masked = ModelConfig(vocabulary_size=50, sequence_length=40, mask_padding=True)
    data = fit_data(None, masked, train_config, rows, labels)
    assert int(data["x"].cardinality()) == steps_per_epoch(300, train_config)
    widths = {int(ids.shape[1]) for ids, _ in data["x"]} | {int(ids.shape[1]) for ids, _ in data["validation_data"]}
    assert len(widths) > 1 and max(widths) <= 40
    # The unmasked pre-padded model's batches are cut too (started from the pad chain: core.training.pad_start).
    seed_like = ModelConfig(vocabulary_size=50, sequence_length=40)
    data = fit_data(None, seed_like, train_config, rows, labels)
    assert len({int(ids.shape[1]) for ids, _ in data["x"]}) > 1
    # Full rows (post-padding, unmasked): Keras's own arrays path, the validation rows cut off as validation_split.
    plain = ModelConfig(vocabulary_size=50, sequence_length=40, padding="post")
    rows = padded_reviews(300, 40, "post")
    data = fit_data(None, plain, train_config, rows, labels)
    cut_at = validation_start(300, train_config.validation_split)
    np.testing.assert_array_equal(data["x"], rows[:cut_at])
    np.testing.assert_array_equal(data["validation_data"][0], rows[cut_at:])
    assert data["shuffle"] and data["batch_size"] == 32
    # Under a strategy full rows go through the datasets too, at their one width.
    data = fit_data(None, plain, replace(train_config, distribution="mirrored"), rows, labels)
    assert {int(ids.shape[1]) for ids, _ in data["x"]} == {40}


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_a_bucketed_masked_batch_has_the_full_batchs_loss_and_gradients(cell, padding):
    """Tolerance: float32 sums in another order, so 1e-6 relative on the loss and 1e-5 absolute on gradients."""
    import keras
    import tensorflow as tf

    from core.model.build import build_model

    config = ModelConfig(
        vocabulary_size=50,
        sequence_length=60,
        embedding_dim=6,
        recurrent_layers=(RecurrentLayerConfig(cell=cell, units=5),),
        padding=padding,
        truncating=padding,
        mask_padding=True,
    )
    keras.utils.set_random_seed(7)
    model = build_model(config)
    rows = padded_reviews(64, 60, padding, seed=4)
    rows = rows[np.argsort(review_widths(rows, padding))][:12]  # the shorter ones: the cut removes many columns
    labels = np.arange(12) % 2
    width = bucket_width(int(review_widths(rows, padding).max()), 60)
    assert width < 60
    loss = keras.losses.BinaryCrossentropy()

    def loss_and_gradients(ids):
        with tf.GradientTape() as tape:
            value = loss(labels[:, None].astype("float32"), model(ids, training=True))
        return float(value), [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, model.trainable_variables)]

    full_loss, full_gradients = loss_and_gradients(rows)
    cut_loss, cut_gradients = loss_and_gradients(cut(rows, width, padding))
    assert cut_loss == pytest.approx(full_loss, rel=1e-5)  # two computations: float32 rounding apart
    for full, short in zip(full_gradients, cut_gradients):
        np.testing.assert_allclose(short, full, atol=1e-5)


def test_full_rows_keep_the_bucketed_order_and_every_column():
    rows = padded_reviews(700, 60, "pre")
    labels = np.arange(700, dtype="float32")
    cut_batches = ReviewBatches(rows, labels, 32, "pre", True, seed=3, epoch_source=lambda: 1)
    full = ReviewBatches(rows, labels, 32, "pre", True, full_rows=True, seed=3, epoch_source=lambda: 1)
    pairs = list(zip(cut_batches.batches(), full.batches(), strict=True))
    assert any(cut_ids.shape[1] < 60 for (cut_ids, _), _ in pairs), "some batches are cut"
    assert len(pairs[-1][0][1]) == 700 % 32, "the last batch is short"
    for (cut_ids, cut_labels), (full_ids, full_labels, weights) in pairs:
        reviews = len(cut_labels)
        # The same reviews, batch by batch, every column kept; a short batch filled up with rows of pads weighing 0.
        np.testing.assert_array_equal(full_labels[:reviews], cut_labels)
        np.testing.assert_array_equal(full_ids[:reviews], rows[cut_labels.astype(int)])
        assert full_ids.shape == (32, 60) and not full_ids[reviews:].any() and not full_labels[reviews:].any()
        np.testing.assert_array_equal(weights, np.arange(32) < reviews)
    made = list(full.dataset())  # the same pass as batches() (one epoch's shuffle), in TensorFlow
    assert {tuple(ids.shape) for ids, _, _ in made} == {(32, 60)}
    for got, expected in zip(made, full.batches(), strict=True):
        for tensor, array in zip(got, expected, strict=True):
            np.testing.assert_array_equal(tensor.numpy(), array)
