"""core.model.trace.layer_terms: a gated cell's gates, candidate and carry at every step of a review equal the values
Keras computes inside its own LSTM and GRU cells (recorded from the cells' activation calls), and its states equal the
forward pass's."""

from pathlib import Path

import numpy as np
import pytest

from core import cells
from core.config import ModelConfig, RecurrentLayerConfig, TrainConfig
from core.data.text import RESERVED_WORD, Vocabulary
from core.model.numpy_loop import extract_weights
from core.model.trace import layer_terms, loop_terms, trace_review
from tests.browser_support import open_page, write_reviews_csv
from tests.float_checks import assert_close
from tests.keras_models import random_model, small_config

# Loading TensorFlow and building Keras models: seconds, not milliseconds.
pytestmark = pytest.mark.slow

VOCABULARY = Vocabulary(words=(RESERVED_WORD, *(f"w{index}" for index in range(1, 20))), num_words=24)
TEXT = "w3 w7 w1 w12 w5 w5 w18 w2 w9"  # nine words: five padding steps before them in 15
# The values each Keras cell hands its activation functions, in the order its call makes them (Keras 3's LSTMCell
# and GRUCell with reset_after): which of our terms each one is.
KERAS_CALLS = {
    "lstm": {"recurrent_activation": ("input gate", "forget gate", "output gate"), "activation": ("candidate", None)},
    "gru": {"recurrent_activation": ("update gate", "reset gate"), "activation": ("candidate",)},
}


def _config(cells_and_units, mask_padding: bool) -> ModelConfig:
    return small_config(cells_and_units, VOCABULARY.num_words, 15, 5, mask_padding=mask_padding)


def _keras_terms(layer, inputs: np.ndarray, shown: list[int], skip: list[bool]) -> dict[str, np.ndarray]:
    """Step the layer's own Keras cell over inputs (steps, features), recording what its activation functions return
    at the shown steps, under our terms' names, and the carry and state it hands on."""
    import tensorflow as tf

    cell = layer.cell
    kind = type(layer).__name__.lower()
    recorded: dict[str, list] = {}
    calls: list[tuple[str, object]] = []
    originals = {name: getattr(cell, name) for name in KERAS_CALLS[kind]}

    def recorder(name):
        def record(values):
            result = originals[name](values)
            calls.append((name, result))
            return result

        return record

    for name in originals:
        setattr(cell, name, recorder(name))
    try:
        state = [tf.zeros((1, cell.units))] * (2 if kind == "lstm" else 1)
        for step, row in enumerate(inputs):
            if skip[step]:
                continue
            calls.clear()
            _, state = cell.call(tf.constant(row[None], tf.float32), state, training=False)
            state = list(state)
            if step not in shown:
                continue
            for name, terms in KERAS_CALLS[kind].items():
                values = [np.asarray(result)[0] for called, result in calls if called == name]
                for term, value in zip(terms, values, strict=True):
                    if term is not None:
                        recorded.setdefault(term, []).append(value)
            recorded.setdefault("state", []).append(np.asarray(state[0])[0])
            if kind == "lstm":
                recorded.setdefault("carry", []).append(np.asarray(state[1])[0])
    finally:
        for name, original in originals.items():
            setattr(cell, name, original)
    return {name: np.stack(values) for name, values in recorded.items()}


@pytest.mark.parametrize(
    "layers, masked",
    [([("lstm", 4)], False), ([("gru", 3)], False), ([("gru", 4), ("lstm", 3)], True)],
    ids=["lstm", "gru", "masked_gru_then_lstm"],
)
def test_gates_equal_what_kerass_own_cells_compute(layers, masked):
    config = _config(layers, masked)
    model = random_model(config)
    weights = extract_weights(model)
    trace = trace_review(weights, VOCABULARY, config, TEXT)
    shown = trace.positions.tolist()
    skip = [masked and token_id == 0 for token_id in trace.ids]
    recurrent = [layer for layer in model.layers if hasattr(layer, "cell")]
    inputs = weights.embedding[trace.ids]
    for index, layer in enumerate(recurrent):
        ours = layer_terms(weights, trace, index)
        theirs = _keras_terms(layer, inputs, shown, skip)
        assert set(theirs) <= set(ours) and len(theirs) >= 4
        for name, values in theirs.items():
            assert values.shape == ours[name].shape == (len(shown), layer.cell.units)
            assert_close(ours[name], values, err_msg=f"layer {index}: {name}")
        assert_close(ours["state"], trace.review_states(index), rtol=1e-12, atol=1e-12)
        for gate in cells.cell(weights.recurrent[index].cell).gate_names:
            assert ours[gate].min() > 0 and ours[gate].max() < 1, gate
        inputs = trace.states[index]
        # The step's table is the same values at the chosen step.
        terms = loop_terms(weights, trace, index, 3)
        assert terms is not None and set(terms) == set(ours)
        for name, values in terms.items():
            assert_close(values, ours[name][2], rtol=0, atol=0)


@pytest.fixture(scope="module")
def gated_runs(tmp_path_factory) -> Path:
    """A runs folder with one tiny stacked GRU > LSTM run, trained one epoch on made-up reviews (not exported)."""
    from core.data.load import load_dataset
    from core.runs.store import RunStore
    from core.training.trainer import train

    root = tmp_path_factory.mktemp("gated")
    reviews = write_reviews_csv(root / "reviews.csv", reviews=200)
    dataset = load_dataset(reviews, num_words=200, cache_dir=root / "cache")
    model = ModelConfig(
        vocabulary_size=200,
        sequence_length=40,
        embedding_dim=8,
        recurrent_layers=(RecurrentLayerConfig(cell="gru", units=6), RecurrentLayerConfig(cell="lstm", units=5)),
    )
    train(model, TrainConfig(epochs=1, batch_size=32), dataset, store=RunStore(root / "runs"))
    return root / "runs"


def test_the_inside_page_shows_each_gated_layers_gates_and_its_step(gated_runs, monkeypatch, tmp_path):
    monkeypatch.setenv("IMDB_RUNS", str(gated_runs))
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    app = open_page("inside")
    assert len(app.get("plotly_chart")) == 2 + 2, "the state, all states, and the GRU's two gates"
    assert [code.value for code in app.code][-1] == cells.GRU.equations
    table = app.dataframe[0].value
    assert list(table.columns) == ["unit", "update gate", "reset gate", "candidate", "state before", "state"]
    assert_close(table["state"], table["update gate"] * table["state before"] + (1 - table["update gate"])
                 * table["candidate"])
    app.selectbox(key="inside_layer").set_value(1).run()
    assert not app.exception, app.exception
    assert [code.value for code in app.code][-1] == cells.LSTM.equations
    table = app.dataframe[0].value
    kept, written = table["forget gate"] * table["carry before"], table["input gate"] * table["candidate"]
    assert_close(table["carry"], kept + written)
    assert_close(table["state"], table["output gate"] * np.tanh(table["carry"]))
    assert len(app.get("plotly_chart")) == 2 + 4, "state, all states, three gates and the carry"
    assert any("forget gate says how much of the carry to keep" in caption.value for caption in app.caption)
