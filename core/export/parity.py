"""Parity: an exported graph against what it must equal (Keras, or the file it was made from), output by output.

Exports and upgrades measure the largest |expected - onnxruntime| of every output here (on both paths of a file with
the steps switch) and refuse a file whose probability or step_probability parts from it by more than the file
contract's tolerances (core.export.model_file).
"""

from __future__ import annotations

import numpy as np

from core.config import ModelConfig
from core.model.build import model_layers, sequence_copy
from core.export.model_file import (
    OUTPUT_NAME,
    PADDING_SKIP_KEY,
    PARITY_TOLERANCE,
    STEPS_SWITCH_NAME,
    TRAJECTORY_NAME,
    TRAJECTORY_TOLERANCE,
    session_options,
)
from core.export.graph import model_props
from core.export.passes.padding_skip import padded_lengths
from core.data.text import pad_sequences

# The largest difference each output may show: the probability, and the per-step probability (a picture of the
# review being read, from hundreds of float32 steps summed in different orders).
TOLERANCES = {OUTPUT_NAME: PARITY_TOLERANCE, TRAJECTORY_NAME: TRAJECTORY_TOLERANCE}


def random_ids(config: ModelConfig, rows: int, seed: int = 0) -> np.ndarray:
    """Random reviews as the model sees them: start id, random word ids, some rows pre- or post-padded."""
    generator = np.random.default_rng(seed)
    length = config.sequence_length
    ids = generator.integers(3, config.vocabulary_size, size=(rows, length), dtype=np.int32)
    ids[:, 0] = 1
    for row in range(1, rows, 2):
        keep = int(generator.integers(1, length + 1))
        ids[row] = pad_sequences([ids[row, :keep]], length, config.padding, config.truncating)[0]
    return ids


def _worse(known: float, new: float) -> float:
    """The larger difference, NaN winning (max() would drop a NaN that comes second)."""
    return float("nan") if np.isnan(known) or np.isnan(new) else max(known, new)


def _trimmed_batches(ids: np.ndarray, padding: str, pad_id: int, batch_size: int):
    """(rows, ids) of rows sorted by length, each batch only as wide as its longest row; then a few rows alone."""
    lengths = np.maximum(padded_lengths(ids, padding, pad_id), 1)
    order = np.argsort(lengths, kind="stable")
    groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    groups += [order[index : index + 1] for index in np.linspace(0, len(order) - 1, min(8, len(order))).astype(int)]
    for rows in groups:
        width = int(lengths[rows].max())
        batch = ids[rows]
        yield rows, (batch[:, -width:] if padding == "pre" else batch[:, :width])


def output_differences(
    session, expected: dict[str, np.ndarray], ids: np.ndarray, *, padding: str, masked: bool, skips: bool,
    pad_id: int = 0,
) -> dict[str, float]:
    """Output name -> largest |expected - session's| over full id rows fed in batches of 256 and, when the graph
    skips padding, over the rows sorted by length with each batch cut to its longest row (and a few rows alone).

    expected holds each output of the full rows. For a masked model only the tokens' steps of step_probability count:
    Keras repeats the last state on masked steps where the ONNX ops write zeros. A graph with the steps switch
    (core.export.model_file.STEPS_SWITCH_NAME) is checked on both paths: every output with the switch fed true, and
    probability as a plain run(["probability"]) gives it, the switch left at its default."""
    names = list(expected)
    input_name = session.get_inputs()[0].name
    switched = STEPS_SWITCH_NAME in {item.name for item in session.get_overridable_initializers()}
    worst = dict.fromkeys(names, 0.0)

    def compare(rows: np.ndarray, batch: np.ndarray) -> None:
        feed = {input_name: batch}
        got = dict(zip(names, session.run(names, {**feed, STEPS_SWITCH_NAME: np.array(True)} if switched else feed)))
        if switched:
            (plain,) = session.run([OUTPUT_NAME], feed)
            worst[OUTPUT_NAME] = _worse(worst[OUTPUT_NAME], float(np.max(np.abs(plain - expected[OUTPUT_NAME][rows]))))
        for name in names:
            want = expected[name][rows]
            if name == TRAJECTORY_NAME:
                width = batch.shape[1]
                want = want[:, -width:] if padding == "pre" else want[:, :width]
                if masked:
                    keep = batch != pad_id
                    got[name], want = np.where(keep, got[name], 0.0), np.where(keep, want, 0.0)
            worst[name] = _worse(worst[name], float(np.max(np.abs(got[name] - want))))

    for start in range(0, len(ids), 256):
        compare(np.arange(start, min(start + 256, len(ids))), ids[start : start + 256])
    if skips:
        for rows, batch in _trimmed_batches(ids, padding, pad_id, 64):
            compare(rows, batch)
    return worst


def exceeded(differences: dict[str, float]) -> tuple[str, float, float] | None:
    """The first output whose difference is over its tolerance (NaN is): (name, difference, limit); None when all
    are within."""
    for name, limit in TOLERANCES.items():
        if name in differences and not differences[name] <= limit:
            return name, differences[name], limit
    return None


def keras_outputs(model, config: ModelConfig, ids: np.ndarray, trajectory: bool) -> dict[str, np.ndarray]:
    """What Keras gives for id rows: probability [rows, 1], and step_probability [rows, steps] when asked."""
    import keras

    outputs = {OUTPUT_NAME: np.asarray(model.predict(ids, batch_size=256, verbose=0)).reshape(len(ids), 1)}
    if trajectory:
        embedding, recurrent, head = model_layers(model, config)
        inputs = keras.Input(shape=(None,), dtype="int32")
        values = embedding(inputs)
        for layer in recurrent[:-1]:
            values = layer(values)
        values = sequence_copy(recurrent[-1])(values)
        for layer in head:
            values = layer(values)
        steps = keras.Model(inputs, values).predict(ids, batch_size=256, verbose=0)
        outputs[TRAJECTORY_NAME] = np.asarray(steps)[..., 0]
    return outputs


def keras_differences(
    proto, model, config: ModelConfig, ids: np.ndarray, *, trajectory: bool = False
) -> dict[str, float]:
    """Output name -> largest |Keras - onnxruntime| over the given id rows; for a graph that skips padding, also with
    each batch cut to its longest row, against Keras on the full padding."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    return output_differences(
        session,
        keras_outputs(model, config, ids, trajectory),
        ids,
        padding=config.padding,
        masked=config.mask_padding,
        skips=bool(model_props(proto).get(PADDING_SKIP_KEY)),
    )
