"""Training an unmasked model on batches cut to their longest review, exactly (the masked model's length buckets, for
the book's own seed).

Every row of a pre-padded batch begins with pad ids, so after k pad steps every row, in every layer, holds the same
state: it depends on the weights only. A batch cut to width W can start every row from the state after
sequence_length - W pad steps, run once for one row, and its loss and gradients are those of the full rows: autodiff
carries them back through the shared pad chain into the embedding's pad row and the recurrent weights. The export uses
the same idea for scoring (core.export.passes.padding_skip); this is it for training.

PadStartModel wraps a build_model model and owns no weights of its own: it calls the model's layers, so what it trains
is the model. Compiling it compiles the model with the same optimizer object, and it saves and loads through the model:
a run's checkpoints (weights and optimizer state) and its model.keras are the files a plain fit of the model writes,
so resuming, exporting and every page read them as before. core.training.trainer trains through it on one device
(cuts_batches).

Only pre-padding without a mask or dropout qualifies (starts_from_pads): post-padding puts the pads after each review,
a mask makes them change nothing (plain cutting is already exact), and dropout would draw other masks for the one pad
row than for each row's own pads.

Compiled with XLA, SimpleRNN layers run as spans instead (core.training.rnn_span): full rows, each layer's loop from
the batch's first filled column, one program for every batch. A masked pre-padded model runs as spans too (its rows
start from zeros, each row's pads masked in the loop); without spans it is the model itself on cut rows. Spans read
every batch at batch_size rows too (core.training.batching's full_rows): the short last batch comes filled up with
rows of pads and row weights, and the train and test steps here weigh them out (PadStartModel.weighed), so that batch
trains and scores as its reviews alone and no second program is compiled for it.
"""

from __future__ import annotations

from core.config import ModelConfig


def starts_from_pads(model: ModelConfig) -> bool:
    """Whether cut batches of this model can start from the pad chain's state exactly (pre-padding, no mask, no
    dropout)."""
    return _pre_padded_without_dropout(model) and not model.mask_padding


def runs_as_spans(model: ModelConfig) -> bool:
    """Whether a pad-start model of this config runs spans under XLA (its runs_spans, read from the config rather than
    the built layers): pre-padding, a stack of SimpleRNN layers without dropout, the last returning its last state."""
    simple = all(layer.cell == "simple_rnn" for layer in model.recurrent_layers)
    return _pre_padded_without_dropout(model) and simple


def _pre_padded_without_dropout(model: ModelConfig) -> bool:
    """Pre-padding, no dropout in any recurrent layer, the last one returning its last state: what both the pad chain
    and spans need of a model, masked or not."""
    no_dropout = all(not layer.dropout and not layer.recurrent_dropout for layer in model.recurrent_layers)
    return model.padding == "pre" and no_dropout and not model.last_return_sequences


def pad_start_model(model, sequence_length: int, spans: bool = True):
    """A keras.Model that computes what model computes on full pre-padded rows, from rows cut to any width W <=
    sequence_length (their last W columns): each recurrent layer starts from the state its pad steps would have left.

    With spans, a model of SimpleRNN layers runs each as a span (core.training.rnn_span) from the batch's first
    filled column: its runs_spans is then True, and fit gives it full rows (one XLA program for every batch). In
    TensorFlow's graph without XLA the spans' loops cost more than cut batches (bench/train_speed.py, 5,000 reviews:
    4.75 against 3.91 s an epoch), so the trainer asks for spans only when it compiles with XLA."""
    import keras
    import tensorflow as tf

    from core.training import rnn_span

    embedding = model.layers[0]
    masked = bool(embedding.mask_zero)  # a masked model: its pads change nothing, no pad chain to run
    recurrent = [layer for layer in model.layers if hasattr(layer, "cell")]
    head = [layer for layer in model.layers[1:] if not hasattr(layer, "cell")]

    def initial_states(layer, batch: int):
        return [tf.zeros((batch, size)) for size in _state_sizes(layer.cell)]

    class PadStartModel(keras.Model):
        """model on cut rows: the pad chain's states, then the cut rows from them (see the module's docstring)."""

        def __init__(self):
            super().__init__(name=f"{model.name}_pad_start")
            self.inner = model  # the only layer tracked: the weights are model's, in model's order
            # Whether call runs spans on full rows (fit then leaves the rows full) or cut rows from pad states.
            self.runs_spans = (
                spans and all(rnn_span.spans(layer) for layer in recurrent) and not recurrent[-1].return_sequences
            )

        def compile(self, optimizer="rmsprop", loss=None, metrics=None, **settings):
            # Weighted: Keras gives row weights only to weighted_metrics (see weighed); without weights, the same.
            super().compile(optimizer=optimizer, loss=loss, weighted_metrics=metrics, **settings)
            # The same optimizer object: the model's save_weights then holds the optimizer state fit has built.
            self.inner.compile(optimizer=self.optimizer, loss=loss, metrics=metrics)

        def save(self, filepath, *args, **kwargs):
            return self.inner.save(filepath, *args, **kwargs)

        def save_weights(self, filepath, *args, **kwargs):
            return self.inner.save_weights(filepath, *args, **kwargs)

        def load_weights(self, filepath, *args, **kwargs):
            return self.inner.load_weights(filepath, *args, **kwargs)

        def weighed(self, data):
            """x, y, the loss's row weights, the metrics' row weights and the reviews a batch holds, from a batch
            with row weights (ReviewBatches' full_rows: 1 a review, 0 a filler row of pads); None without them.

            Keras's loss is a sum over the batch's rows divided by its row count, fillers included, and its loss
            tracker counts every row: the loss's weights are scaled so it is the mean over the reviews alone (what
            plain fit gives that batch), and the tracker counts the reviews. The metrics' weights stay 0 or 1: a
            weighted mean over the epoch's reviews, each counted once."""
            x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
            if weights is None:
                return None
            reviews = tf.reduce_sum(weights)
            return x, y, weights * (tf.cast(tf.shape(weights)[0], weights.dtype) / reviews), weights, reviews

        def train_step(self, data):
            weighed = self.weighed(data)
            if weighed is None:
                return super().train_step(data)
            x, y, loss_weights, metric_weights, reviews = weighed
            # Keras's train_step (TensorFlow backend) on one device, the loss tracker counting reviews.
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=loss_weights, training=True)
                self._loss_tracker.update_state(loss, sample_weight=reviews)
                loss = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
            return self.compute_metrics(x, y, y_pred, sample_weight=metric_weights)

        def test_step(self, data):
            weighed = self.weighed(data)
            if weighed is None:
                return super().test_step(data)
            x, y, loss_weights, metric_weights, reviews = weighed
            y_pred = self(x, training=False)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=loss_weights, training=False)
            self._loss_tracker.update_state(loss, sample_weight=reviews)
            return self.compute_metrics(x, y, y_pred, sample_weight=metric_weights)

        def pad_states(self, pad_steps: int) -> list[list]:
            """Each recurrent layer's states after pad_steps pad ids (a scalar tensor), for one row: a
            tf.while_loop over the steps, one compiled step whatever the count."""
            pad_vector = embedding(tf.zeros((1, 1), tf.int32))[:, 0]
            flat = [state for layer in recurrent for state in initial_states(layer, 1)]

            def step(index, *states):
                states, values, new_states, at = list(states), pad_vector, [], 0
                for layer in recurrent:
                    count = len(_state_sizes(layer.cell))
                    values, layer_states = layer.cell.call(values, states[at : at + count], training=False)
                    new_states += list(layer_states) if isinstance(layer_states, (list, tuple)) else [layer_states]
                    at += count
                return (index + 1, *new_states)

            # XLA differentiates a while loop only with a known bound on its steps.
            _, *flat = tf.while_loop(
                lambda index, *_: index < pad_steps,
                step,
                (tf.constant(0), *flat),
                maximum_iterations=sequence_length,
            )
            grouped, at = [], 0
            for layer in recurrent:
                count = len(_state_sizes(layer.cell))
                grouped.append(flat[at : at + count])
                at += count
            return grouped

        def call(self, ids, training=False):
            if self.runs_spans:
                return self.span_call(ids, training)
            if masked:  # Keras's mask skips a cut row's pads
                return self.inner(ids, training=training)
            # A tensor, not a number: Keras traces its train step for any width; the loop then runs 0 times on
            # uncut rows, leaving the zero states the model starts from anyway.
            pad_steps = sequence_length - tf.shape(ids)[1]
            values = embedding(ids)
            batch = tf.shape(ids)[0]
            starts = [[tf.tile(state, [batch, 1]) for state in states] for states in self.pad_states(pad_steps)]
            for layer, start in zip(recurrent, starts):
                values = layer(values, initial_state=start, training=training)
            for layer in head:
                values = layer(values, training=training)
            return values

        def span_call(self, ids, training):
            """The same as call, each layer a span (core.training.rnn_span) from the batch's first filled column:
            one program for any batch, rows of any width (pre-padded back to sequence_length)."""
            ids = tf.pad(ids, [[0, 0], [sequence_length - tf.shape(ids)[1], 0]])
            ids = tf.ensure_shape(ids, (None, sequence_length))
            begin = rnn_span.first_filled_column(ids)
            batch = tf.shape(ids)[0]
            # Time-major, as the loops read them: (sequence_length, batch, features).
            values = embedding(tf.transpose(ids))
            mask = tf.not_equal(tf.transpose(ids), 0) if masked else None
            # A row of pads, the pad chain's input (a masked model has none to run).
            pad_values = None if masked else tf.tile(embedding(tf.zeros((1, 1), tf.int32)), [sequence_length, 1, 1])
            for layer in recurrent:
                cell = layer.cell
                weights = (cell.kernel, cell.recurrent_kernel, cell.bias)
                if masked:
                    start = tf.zeros((batch, cell.units))
                else:
                    # The pad chain: begin pad steps for one row, the last begin steps of a row of pads.
                    pad_values, pad_state = rnn_span.span(
                        pad_values, tf.zeros((1, cell.units)), *weights, sequence_length - begin
                    )
                    start = tf.tile(pad_state, [batch, 1])
                values, last = rnn_span.span(values, start, *weights, begin, mask)
            values = last
            for layer in head:
                values = layer(values, training=training)
            return values

    return PadStartModel()


def _state_sizes(cell) -> list[int]:
    sizes = cell.state_size
    return list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
