"""Widget helpers: each *_ui() function draws widgets with explicit keys and returns plain values or config objects."""

from __future__ import annotations

from typing import Any

import streamlit as st

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

CELL_LABELS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}

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


def _int_input(label: str, key: str, step: int, help_text: str | None = None) -> int:
    # No min or max: the config's own ValueError explains a bad value, next to the field.
    value = st.number_input(label, step=step, key=key, help=help_text)
    return int(value) if value is not None else 0


def _fraction_input(label: str, key: str, help_text: str | None = None) -> float:
    value = st.number_input(label, step=0.05, format="%.2f", key=key, help=help_text)
    return float(value) if value is not None else 0.0


def recurrent_layers_ui() -> tuple[list[RecurrentLayerConfig], bool]:
    """The recurrent stack, one row a layer with add and remove; returns the valid layers and whether all were valid."""
    count = st.session_state[LAYER_COUNT_KEY]
    layers, valid = [], True
    for index in range(count):
        cell_column, units_column, dropout_column, recurrent_column, remove_column = st.columns(
            [2, 2, 2, 2, 1], vertical_alignment="bottom"
        )
        with cell_column:
            cell = st.selectbox(
                f"Layer {index + 1} cell",
                CELL_TYPES,
                format_func=CELL_LABELS.get,
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
                icon=":material/delete:",
            )
        # Errors go under the row, in the column of the field they name.
        for column, message in (
            (units_column, units_error),
            (dropout_column, dropout_error),
            (recurrent_column, recurrent_error),
        ):
            if message:
                with column:
                    field_error(message)
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
    """The model half of the Build form; each bad value explained under its field; None while any is bad."""
    errors = False
    first, second, third = st.columns(3)
    with first:
        vocabulary_size = _int_input(
            "Vocabulary size", "build_vocabulary_size", 1000, "num_words: the most frequent words kept; others are <unk>"
        )
        message = config_error(ModelConfig, vocabulary_size=vocabulary_size)
        field_error(message)
        errors |= message is not None
    with second:
        sequence_length = _int_input(
            "Sequence length", "build_sequence_length", 50, "Reviews are padded or cut to this many tokens"
        )
        message = config_error(ModelConfig, sequence_length=sequence_length)
        field_error(message)
        errors |= message is not None
    with third:
        embedding_dim = _int_input("Embedding dim", "build_embedding_dim", 8, "Size of each word vector")
        message = config_error(ModelConfig, embedding_dim=embedding_dim)
        field_error(message)
        errors |= message is not None

    st.markdown("**Recurrent layers**")
    layers, layers_valid = recurrent_layers_ui()
    errors |= not layers_valid

    st.markdown("**On top**")
    first, second, third = st.columns(3)
    with first:
        hidden_dense_units = _int_input(
            "Hidden Dense units (0 for none)", "build_hidden_dense_units", 8, "An extra Dense(relu) before the output"
        )
        message = config_error(ModelConfig, hidden_dense_units=hidden_dense_units)
        field_error(message)
        errors |= message is not None
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
            field_error(message)
            errors = True
    with third:
        mask_padding = st.toggle(
            "Mask padding", key="build_mask_padding", help="Embedding(mask_zero=True): padded steps leave the state as it is"
        )
        padding = st.selectbox("Padding side", PAD_SIDES, key="build_padding", help="Where pad ids go in a short review")
        truncating = st.selectbox(
            "Truncating side", PAD_SIDES, key="build_truncating", help="Which end of a long review is cut"
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
    """The training half of the Build form; each bad value explained under its field; None while any is bad."""
    errors = False
    first, second, third = st.columns(3)
    with first:
        optimizer = st.selectbox("Optimizer", OPTIMIZERS, key="build_optimizer")
        learning_rate = st.number_input("Learning rate", step=0.0001, format="%.4f", key="build_learning_rate")
        learning_rate = float(learning_rate) if learning_rate is not None else 0.0
        message = config_error(TrainConfig, learning_rate=learning_rate)
        field_error(message)
        errors |= message is not None
    with second:
        batch_size = _int_input("Batch size", "build_batch_size", 32)
        message = config_error(TrainConfig, batch_size=batch_size)
        field_error(message)
        errors |= message is not None
        epochs = _int_input("Epochs", "build_epochs", 1)
        message = config_error(TrainConfig, epochs=epochs)
        field_error(message)
        errors |= message is not None
    with third:
        validation_split = _fraction_input(
            "Validation split", "build_validation_split", "Share of training reviews held out, from the end"
        )
        message = config_error(TrainConfig, validation_split=validation_split)
        field_error(message)
        errors |= message is not None
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
        field_error(message)
        errors |= message is not None
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


def architecture_label(model: ModelConfig) -> str:
    """A model in one line, as the Runs table and the Train page show it: Embedding(10000, 32) > SimpleRNN(32) > Dense(1)."""
    parts = [f"Embedding({model.vocabulary_size}, {model.embedding_dim})"]
    parts += [f"{CELL_LABELS[layer.cell]}({layer.units})" for layer in model.recurrent_layers]
    if model.hidden_dense_units:
        parts.append(f"Dense({model.hidden_dense_units}, relu)")
    if model.output_layer:
        parts.append("Dense(1)")
    return " > ".join(parts)


def best_epoch(history: dict) -> int | None:
    """The 1-based epoch with the lowest validation loss (what early stopping watches), or None without validation."""
    losses = history.get("val_loss") or []
    if not losses:
        return None
    return min(range(len(losses)), key=losses.__getitem__) + 1


def history_figure(history: dict, metric: str, title: str, height: int = 320):
    """The seed's figure in plotly: training as dots, validation as a line, over epochs; the best epoch marked."""
    import plotly.graph_objects as go

    figure = go.Figure()
    training = history.get(metric) or []
    validation = history.get(f"val_{metric}") or []
    figure.add_trace(
        go.Scatter(x=list(range(1, len(training) + 1)), y=training, mode="markers", name=f"Training {metric}")
    )
    if validation:
        figure.add_trace(
            go.Scatter(x=list(range(1, len(validation) + 1)), y=validation, mode="lines", name=f"Validation {metric}")
        )
    best = best_epoch(history)
    if best is not None:
        figure.add_vline(x=best, line_dash="dot", line_color="gray", annotation_text=f"best epoch {best}")
    figure.update_layout(
        title=title,
        xaxis_title="Epochs",
        yaxis_title=metric.capitalize(),
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    figure.update_xaxes(rangemode="tozero", dtick=1 if len(training) <= 20 else None)
    return figure


def flatten_config(config: ExperimentConfig) -> dict[str, object]:
    """Every field of an experiment under a dotted name (model.recurrent_layers[0].units), for comparing two runs."""
    flat: dict[str, object] = {}
    for section, values in config.to_dict().items():
        for name, value in values.items():
            if name == "recurrent_layers":
                for index, layer in enumerate(value):
                    for layer_field, layer_value in layer.items():
                        flat[f"{section}.recurrent_layers[{index}].{layer_field}"] = layer_value
                flat[f"{section}.recurrent_layers (count)"] = len(value)
            else:
                flat[f"{section}.{name}"] = value
    return flat


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~:$&=\"'")


def escape_markdown(text: str) -> str:
    """Text that st.markdown shows literally: every markdown, directive and HTML character backslash-escaped."""
    return "".join("\\" + character if character in _MARKDOWN_SPECIALS else character for character in text)


# ---- Classify, Export and Inside the RNN ------------------------------------------------------------------------------

UPLOAD_MODEL_OPTION = "Upload an .onnx file"


def model_choice_ui(models: dict, key: str):
    """Pick a model: one of models (label -> .onnx path) or an uploaded file; its path, or None while none is chosen."""
    from dashboard.resources import save_upload

    choice = st.selectbox("Model", [*models, UPLOAD_MODEL_OPTION], key=key)
    if choice != UPLOAD_MODEL_OPTION:
        return models[choice]
    uploaded = st.file_uploader(
        "An .onnx file exported by this project (python -m core export RUN_DIR)", type=["onnx"], key=f"{key}_upload"
    )
    if uploaded is None:
        return None
    # Stored under its content hash: the uploaded name never becomes a path on the server.
    return save_upload(uploaded.getvalue(), ".onnx")


def run_label(run) -> str:
    """One line naming a run in a picker: id, status, test accuracy when known."""
    accuracy = (run.metrics or {}).get("test_accuracy")
    parts = [run.run_id, run.status]
    if accuracy is not None:
        parts.append(f"test accuracy {accuracy:.1%}")
    return " · ".join(parts)


def run_choice_ui(runs: list, key: str, label: str = "Run"):
    """Pick one of runs (RunInfo, newest first); returns the chosen RunInfo."""
    by_id = {run.run_id: run for run in runs}
    run_id = st.selectbox(label, list(by_id), format_func=lambda value: run_label(by_id[value]), key=key)
    return by_id[run_id]


def review_choice_ui(examples: list, key: str, default_index: int = 0) -> str:
    """A review to look at: one of the examples ((title, text) pairs) or the user's own; returns its text."""
    own = "My own review"
    titles = [title for title, _ in examples]
    choice = st.selectbox("Review", [*titles, own], index=default_index, key=key)
    if choice == own:
        return st.text_area("Your review", key=f"{key}_text", height=120) or ""
    return dict(examples)[choice]
