"""The Build page's form: model and training settings as widgets with explicit keys, each bad value explained at its field.

Longer than a page (it is not one): every field of ModelConfig and TrainConfig has its widget here, so that the page
reads top to bottom. In order: the session state behind the widgets, field helpers, the recurrent stack, the model
form, the training form.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import cells
from core.config import (
    CELL_TYPES,
    MAX_RECURRENT_LAYERS,
    OPTIMIZERS,
    PAD_SIDES,
    ExperimentConfig,
    ModelConfig,
    RecurrentLayerConfig,
    TrainConfig,
)

# The Build form keeps one plain session key for the number of recurrent layers; widget keys hold the rest.
LAYER_COUNT_KEY = "build_layer_count"
_LAYER_FIELDS = ("cell", "units", "dropout", "recurrent_dropout")
_MODEL_FIELDS = (
    "vocabulary_size",
    "sequence_length",
    "embedding_dim",
    "hidden_dense_units",
    "output_layer",
    "last_return_sequences",
    "mask_padding",
    "padding",
    "truncating",
)
_TRAIN_FIELDS = ("optimizer", "learning_rate", "batch_size", "epochs", "validation_split", "early_stopping_patience", "seed")


# ---- The session state behind the widgets ---------------------------------------------------------------------------


def _layer_key(index: int, name: str) -> str:
    return f"build_layer_{index}_{name}"


def load_experiment_into_widgets(config: ExperimentConfig) -> None:
    """Set every Build widget's value from config (a preset chosen, or the page opened again)."""
    state = st.session_state
    for name in _MODEL_FIELDS:
        state[f"build_{name}"] = getattr(config.model, name)
    for name in _TRAIN_FIELDS:
        state[f"build_{name}"] = getattr(config.train, name)
    for index, layer in enumerate(config.model.recurrent_layers):
        for name in _LAYER_FIELDS:
            state[_layer_key(index, name)] = getattr(layer, name)
    # A config file may say 0 for a fraction; a number input given an int would then step in whole numbers.
    for key in ["build_learning_rate", "build_validation_split"] + [
        _layer_key(index, name)
        for index in range(len(config.model.recurrent_layers))
        for name in ("dropout", "recurrent_dropout")
    ]:
        state[key] = float(state[key])
    state[LAYER_COUNT_KEY] = len(config.model.recurrent_layers)


def build_widgets_missing() -> bool:
    """True when the Build widgets have no values yet (first visit, or Streamlit dropped them on a page switch)."""
    return "build_vocabulary_size" not in st.session_state or LAYER_COUNT_KEY not in st.session_state


def _add_layer() -> None:
    state = st.session_state
    index = state[LAYER_COUNT_KEY]
    # A new layer copies the one above it, the usual way to stack cells.
    for name in _LAYER_FIELDS:
        state[_layer_key(index, name)] = state.get(_layer_key(index - 1, name), getattr(RecurrentLayerConfig(), name))
    state[LAYER_COUNT_KEY] = index + 1


def _remove_layer(index: int) -> None:
    state = st.session_state
    count = state[LAYER_COUNT_KEY]
    for later in range(index, count - 1):
        for name in _LAYER_FIELDS:
            state[_layer_key(later, name)] = state[_layer_key(later + 1, name)]
    for name in _LAYER_FIELDS:
        state.pop(_layer_key(count - 1, name), None)
    state[LAYER_COUNT_KEY] = count - 1


# ---- Field helpers ---------------------------------------------------------------------------------------------------


def field_error(message: str | None) -> None:
    """Show a config error right under the field it names; nothing when message is None."""
    if message:
        st.error(message, icon=":material/error:")


def config_error(cls: type, **values: Any) -> str | None:
    """The ValueError message cls(**values) raises (other fields at their valid defaults), or None when valid."""
    try:
        cls(**values)
    except ValueError as error:
        return str(error)
    return None


def _show_row_errors(row: list[str | None]) -> bool:
    """Show the errors of a row of fields under it, at the form's full width (a column is too narrow for a sentence);
    empties row; True when there was any."""
    messages = [message for message in row if message]
    for message in messages:
        field_error(message)
    row.clear()
    return bool(messages)


def _int_input(label: str, key: str, step: int, help_text: str | None = None) -> int:
    # No min or max: the config's own ValueError explains a bad value, next to the field.
    value = st.number_input(label, step=step, key=key, help=help_text)
    return int(value) if value is not None else 0


def _fraction_input(label: str, key: str, help_text: str | None = None) -> float:
    value = st.number_input(label, step=0.05, format="%.2f", key=key, help=help_text)
    return float(value) if value is not None else 0.0


# ---- The recurrent stack, the model form, the training form ---------------------------------------------------------


def recurrent_layers_ui() -> tuple[list[RecurrentLayerConfig], bool]:
    """The recurrent stack, one row a layer with add and remove; returns the valid layers and whether all were valid."""
    count = st.session_state[LAYER_COUNT_KEY]
    layers, valid = [], True
    for index in range(count):
        # The cell's name ("SimpleRNN") and the labels fit from a 1,024 px window up.
        cell_column, units_column, dropout_column, recurrent_column, remove_column = st.columns(
            [3, 2, 2, 3, 2.5], vertical_alignment="bottom"
        )
        with cell_column:
            cell = st.selectbox(
                f"Layer {index + 1} cell",
                CELL_TYPES,
                format_func=lambda name: cells.cell(name).label,
                key=_layer_key(index, "cell"),
            )
        with units_column:
            units = _int_input("Units", _layer_key(index, "units"), 8, "Size of the state vector")
            units_error = config_error(RecurrentLayerConfig, units=units)
        with dropout_column:
            dropout = _fraction_input("Dropout", _layer_key(index, "dropout"), "Dropout on the layer's inputs")
            dropout_error = config_error(RecurrentLayerConfig, dropout=dropout)
        with recurrent_column:
            recurrent_dropout = _fraction_input(
                "Recurrent dropout", _layer_key(index, "recurrent_dropout"), "Dropout on the recurrent state"
            )
            recurrent_error = config_error(RecurrentLayerConfig, recurrent_dropout=recurrent_dropout)
        with remove_column:
            st.button(
                "Remove",
                key=f"build_layer_{index}_remove",
                on_click=_remove_layer,
                args=(index,),
                disabled=count <= 1,
            )
        # Errors go right under the row, at its full width: the row's columns are too narrow to hold a sentence, and
        # an error in one of them would push the row's other fields out of line.
        for message in (units_error, dropout_error, recurrent_error):
            # The config's own wording names the field ("recurrent layer.units must be ..."); the row names the layer.
            field_error(message and f"Layer {index + 1}: {message.removeprefix('recurrent layer.')}")
        if units_error or dropout_error or recurrent_error:
            valid = False
            continue
        layers.append(RecurrentLayerConfig(cell, units, dropout, recurrent_dropout))
    count_error = config_error(ModelConfig, recurrent_layers=tuple(RecurrentLayerConfig() for _ in range(count)))
    st.button(
        "Add a recurrent layer",
        key="build_add_layer",
        on_click=_add_layer,
        disabled=count > MAX_RECURRENT_LAYERS,
        icon=":material/add:",
    )
    field_error(count_error)
    return layers, valid and count_error is None


def model_config_ui() -> ModelConfig | None:
    """The model half of the Build form; each bad value explained under its row of fields; None while any is bad."""
    errors, row = False, []
    first, second, third = st.columns(3)
    with first:
        vocabulary_size = _int_input(
            "Vocabulary size", "build_vocabulary_size", 1000, "num_words: the most frequent words kept; others are <unk>"
        )
        row.append(config_error(ModelConfig, vocabulary_size=vocabulary_size))
    with second:
        sequence_length = _int_input(
            "Sequence length", "build_sequence_length", 50, "Reviews are padded or cut to this many tokens"
        )
        row.append(config_error(ModelConfig, sequence_length=sequence_length))
    with third:
        embedding_dim = _int_input("Embedding dim", "build_embedding_dim", 8, "Size of each word vector")
        row.append(config_error(ModelConfig, embedding_dim=embedding_dim))

    errors |= _show_row_errors(row)

    st.markdown("**Recurrent layers**")
    layers, layers_valid = recurrent_layers_ui()
    errors |= not layers_valid

    st.markdown("**On top**")
    first, second = st.columns(2)
    with first:
        hidden_dense_units = _int_input(
            "Hidden Dense units (0 for none)", "build_hidden_dense_units", 8, "An extra Dense(relu) before the output"
        )
        row.append(config_error(ModelConfig, hidden_dense_units=hidden_dense_units))
    with second:
        output_layer = st.checkbox(
            "Output Dense(1, sigmoid)", key="build_output_layer", help="The classifier on top; the seed's first two cells have none"
        )
        last_return_sequences = st.checkbox(
            "Return every step",
            key="build_last_return_sequences",
            help="The last recurrent layer returns its state at every step (return_sequences=True), as in the seed's first cell",
        )
        message = config_error(
            ModelConfig,
            output_layer=output_layer,
            last_return_sequences=last_return_sequences,
            hidden_dense_units=1 if hidden_dense_units > 0 else 0,
        )
        # hidden_dense_units has its own message above; only the combination is reported here.
        if message and "last_return_sequences" in message:
            row.append(message)
    errors |= _show_row_errors(row)

    st.markdown("**Padding**")
    first, second, third = st.columns(3, vertical_alignment="bottom")
    with first:
        padding = st.selectbox("Padding side", PAD_SIDES, key="build_padding", help="Where pad ids go in a short review")
    with second:
        truncating = st.selectbox(
            "Truncating side", PAD_SIDES, key="build_truncating", help="Which end of a long review is cut"
        )
    with third:
        mask_padding = st.toggle(
            "Mask padding",
            key="build_mask_padding",
            help="Embedding(mask_zero=True): padded steps leave the state as it is",
        )
    if errors:
        return None
    try:
        return ModelConfig(
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            embedding_dim=embedding_dim,
            recurrent_layers=tuple(layers),
            hidden_dense_units=hidden_dense_units,
            output_layer=output_layer,
            last_return_sequences=last_return_sequences,
            padding=padding,
            truncating=truncating,
            mask_padding=mask_padding,
        )
    except ValueError as error:
        field_error(str(error))
        return None


def train_config_ui() -> TrainConfig | None:
    """The training half of the Build form; each bad value explained under its row of fields; None while any is bad."""
    errors, row = False, []
    first, second, third = st.columns(3)
    with first:
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, key="build_optimizer")
        learning_rate = st.number_input("Learning rate", step=0.0001, format="%.4f", key="build_learning_rate")
        learning_rate = float(learning_rate) if learning_rate is not None else 0.0
        row.append(config_error(TrainConfig, learning_rate=learning_rate))
    with second:
        batch_size = _int_input("Batch size", "build_batch_size", 32)
        row.append(config_error(TrainConfig, batch_size=batch_size))
        epochs = _int_input("Epochs", "build_epochs", 1)
        row.append(config_error(TrainConfig, epochs=epochs))
    with third:
        validation_split = _fraction_input(
            "Validation split", "build_validation_split", "Share of training reviews held out, from the end"
        )
        row.append(config_error(TrainConfig, validation_split=validation_split))
        patience = _int_input(
            "Early stopping patience (0 for off)",
            "build_early_stopping_patience",
            1,
            "Epochs without a better validation loss before training stops",
        )
        message = config_error(
            TrainConfig,
            early_stopping_patience=patience,
            validation_split=validation_split if 0.0 <= validation_split < 1.0 else 0.2,
        )
        row.append(message)
    errors |= _show_row_errors(row)
    seed = _int_input("Seed", "build_seed", 1, "Seeds Keras, NumPy and the data shuffle")
    message = config_error(TrainConfig, seed=seed)
    field_error(message)
    errors |= message is not None
    if errors:
        return None
    try:
        return TrainConfig(
            optimizer=optimizer,
            learning_rate=learning_rate,
            batch_size=batch_size,
            epochs=epochs,
            validation_split=validation_split,
            early_stopping_patience=patience,
            seed=seed,
        )
    except ValueError as error:
        field_error(str(error))
        return None
