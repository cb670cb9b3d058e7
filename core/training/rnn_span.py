"""A SimpleRNN layer run over only the columns a batch fills, in one compiled program for every batch: a loop whose
start is found in the graph, with its backward pass written out.

A pre-padded batch cut to its longest review (core.training.pad_start) is exact but gives XLA one program to compile
a width: about 5 s each, eleven training and eleven validation widths in a first epoch. Here the rows stay full
(sequence_length wide, one shape), the batch's first filled column `begin` is computed in the graph, and a
tf.while_loop steps the cell from there only. What XLA cannot differentiate cheaply is a loop of unknown length: its
automatic gradient keeps full-width accumulators (measured +40-55 ms a step). So the gradient is written here
(tf.custom_gradient): the forward loop stores each step's state, the backward loop runs back from the last step to
begin, accumulating the weights' gradients step by step, so nothing it does scales with the columns it skips.

The products stay inside the loops, a few small ones a step: taken out (the inputs' share of every step as one large
product before the forward loop, the kernel's, the recurrent kernel's and the inputs' gradients as large products after
the backward loop) a batch of 128 reviews took 16 ms against 11 (seed, its first filled column at 227 of 500, AMD EPYC
with AVX-512): XLA's CPU dot runs at about the same rate large or small here (26 billion multiply-adds a second), and a
product over all columns also computes the skipped ones. Joining the input and recurrent kernels into one product a
step (a concatenation a step) was no faster either: 12.2 and 15.2 ms (unmasked, masked) against 13.4 and 13.6.
Projecting the first layer's inputs for the whole vocabulary once a batch (embeddings x kernel, a 10,000 x 32 table the
loops read rows of: one product a step forward and two backward, where there are two and four) took the seed's and
the default model's epochs in bench/train_speed.py from 0.62-0.64 s to 0.46-0.49 s, but only with the embeddings'
gradient as one dense product: Keras on TensorFlow squares an embedding's gradient an id occurrence for RMSprop's
running size, and a dense gradient sums the occurrences first, which changed a toy training's loss after three epochs
from 0.084 to 0.24. Kept exact (the occurrences' gradients written a step, the kernel's from the table), it was no
faster: 19.0 against 18.4 ms a batch, four alternated compiles. Unrolling the loops 2, 4 or 8 steps an iteration, and
XLA's `--xla_cpu_multi_thread_eigen=false`, moved nothing beyond the 20-50% that one compile differs from the next.

SimpleRNN with tanh and a bias only (spans): state_t = tanh(x_t kernel + bias + state_(t-1) recurrent_kernel), the
cell core/cells.py describes for NumPy; gated cells keep the cut batches. With a mask (a masked model's padding), a
row's state passes a masked step unchanged, as Keras's masked layers do, and so does its gradient.
"""

from __future__ import annotations


def spans(layer) -> bool:
    """Whether span runs this Keras recurrent layer exactly: a SimpleRNN with tanh and a bias, no dropout."""
    import keras

    cell = getattr(layer, "cell", None)
    return (
        isinstance(cell, keras.layers.SimpleRNNCell)
        and cell.activation is keras.activations.tanh
        and cell.use_bias
        and not cell.dropout
        and not cell.recurrent_dropout
    )


def first_filled_column(ids):
    """The first column of a pre-padded batch (batch, columns) that holds a review id in any row (pad id 0); the
    width when every row is padding."""
    import tensorflow as tf

    filled = tf.reduce_any(tf.not_equal(ids, 0), axis=0)
    width = tf.shape(ids, out_type=tf.int32)[1]
    first = tf.argmax(tf.cast(filled, tf.int32), output_type=tf.int32)
    return tf.where(tf.reduce_any(filled), first, width)


def span(inputs, initial_state, kernel, recurrent_kernel, bias, begin, mask=None):
    """A SimpleRNN (tanh) over steps begin .. T-1 of time-major inputs (T, batch, features), from initial_state
    (batch, units), the state before step begin; mask (T, batch), when given, True where a row's step counts.

    Returns (states, last): states (T, batch, units) holds each step's state (zeros before begin), last the state
    after step T-1 (initial_state when begin is T). Differentiable in inputs, initial_state and the weights; begin is
    a scalar int32 tensor. T must be known when the graph is built (XLA bounds the loops with it).
    """
    import tensorflow as tf

    weights = [tf.convert_to_tensor(weight) for weight in (kernel, recurrent_kernel, bias)]

    @tf.custom_gradient
    def run(inputs, initial_state, kernel, recurrent_kernel, bias):
        steps = inputs.shape[0]

        def forward(step, state, states):
            new_state = tf.tanh(tf.matmul(inputs[step], kernel) + bias + tf.matmul(state, recurrent_kernel))
            state = new_state if mask is None else tf.where(mask[step][:, None], new_state, state)
            return step + 1, state, states.write(step, state)

        stored = tf.TensorArray(inputs.dtype, size=steps, element_shape=initial_state.shape)
        _, last, stored = tf.while_loop(
            lambda step, *_: step < steps, forward, (begin, initial_state, stored), maximum_iterations=steps
        )
        states = stored.stack()

        def gradient(grad_states, grad_last):
            def backward(step, grad_state, grad_inputs, grad_kernel, grad_recurrent, grad_bias):
                state = states[step]
                previous = tf.where(step > begin, states[tf.maximum(step - 1, 0)], initial_state)
                grad_total = grad_states[step] + grad_state
                grad_sum = grad_total * (1.0 - state * state)  # tanh' = 1 - tanh^2
                grad_previous = tf.matmul(grad_sum, recurrent_kernel, transpose_b=True)
                if mask is not None:  # a masked step: the state and its gradient pass it unchanged
                    counts = mask[step][:, None]
                    grad_sum = tf.where(counts, grad_sum, 0.0)
                    grad_previous = tf.where(counts, grad_previous, grad_total)
                return (
                    step - 1,
                    grad_previous,
                    grad_inputs.write(step, tf.matmul(grad_sum, kernel, transpose_b=True)),
                    grad_kernel + tf.matmul(inputs[step], grad_sum, transpose_a=True),
                    grad_recurrent + tf.matmul(previous, grad_sum, transpose_a=True),
                    grad_bias + tf.reduce_sum(grad_sum, axis=0),
                )

            grad_inputs = tf.TensorArray(inputs.dtype, size=steps, element_shape=inputs.shape[1:])
            start = (tf.constant(steps - 1), grad_last, grad_inputs, *(tf.zeros_like(w) for w in weights))
            _, grad_initial, grad_inputs, *grad_weights = tf.while_loop(
                lambda step, *_: step >= begin, backward, start, maximum_iterations=steps
            )
            return (grad_inputs.stack(), grad_initial, *grad_weights)

        return (states, last), gradient

    return run(inputs, initial_state, *weights)
