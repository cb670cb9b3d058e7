"""Build the Keras model of a ModelConfig, find its layers, and describe it (shapes, parameters) without building it."""

from __future__ import annotations

from dataclasses import dataclass

from core import cells
from core.config import ModelConfig

BYTES_PER_PARAMETER = 4  # float32 weights


@dataclass(frozen=True)
class LayerSummary:
    """One row of a model summary."""

    name: str  # the Keras layer name build_model gives it
    type: str  # the Keras class name
    output_shape: tuple[int | None, ...]  # None is the batch axis
    params: int  # trainable parameter count
    formula: str  # how params is computed, with the numbers filled in


@dataclass(frozen=True)
class ModelDescription:
    """Every layer of a model, with totals: what `python -m core summary` prints."""

    layers: tuple[LayerSummary, ...]
    total_params: int
    size_bytes: int  # float32 weights

    def to_dict(self) -> dict:
        return {
            "layers": [
                {
                    "name": layer.name,
                    "type": layer.type,
                    "output_shape": list(layer.output_shape),
                    "params": layer.params,
                    "formula": layer.formula,
                }
                for layer in self.layers
            ],
            "total_params": self.total_params,
            "size_bytes": self.size_bytes,
        }


def layer_names(config: ModelConfig) -> list[str]:
    """The names build_model gives its layers, in order."""
    names = ["embedding"]
    names += [f"{layer.cell}_{index}" for index, layer in enumerate(config.recurrent_layers, start=1)]
    if config.hidden_dense_units:
        names.append("dense_hidden")
    if config.output_layer:
        names.append("output")
    return names


def describe(config: ModelConfig) -> ModelDescription:
    """Summarize the model of config from arithmetic alone: no weights are built."""
    names = iter(layer_names(config))
    length = config.sequence_length
    rows = []
    params = config.vocabulary_size * config.embedding_dim
    rows.append(
        LayerSummary(
            next(names),
            "Embedding",
            (None, length, config.embedding_dim),
            params,
            f"V*d = {config.vocabulary_size}*{config.embedding_dim} = {params:,}",
        )
    )
    width = config.embedding_dim
    last = len(config.recurrent_layers) - 1
    for index, layer in enumerate(config.recurrent_layers):
        cell = cells.cell(layer.cell)
        params, formula = cell.parameters(width, layer.units), cell.formula(width, layer.units)
        sequences = index < last or config.last_return_sequences
        shape = (None, length, layer.units) if sequences else (None, layer.units)
        rows.append(LayerSummary(next(names), cell.keras_class, shape, params, f"{formula} = {params:,}"))
        width = layer.units
    for units in ([config.hidden_dense_units] if config.hidden_dense_units else []) + (
        [1] if config.output_layer else []
    ):
        params = width * units + units
        formula = f"in*out+out = {width}*{units}+{units} = {params:,}"
        rows.append(LayerSummary(next(names), "Dense", (None, units), params, formula))
        width = units
    total = sum(row.params for row in rows)
    return ModelDescription(tuple(rows), total, total * BYTES_PER_PARAMETER)


def build_model(config: ModelConfig):
    """The Keras model of config, built (weights initialized) but not compiled."""
    import keras
    from keras import layers

    names = iter(layer_names(config))
    stack = [
        keras.Input(shape=(config.sequence_length,), dtype="int32", name="input_ids"),
        layers.Embedding(
            config.vocabulary_size, config.embedding_dim, mask_zero=config.mask_padding, name=next(names)
        ),
    ]
    last = len(config.recurrent_layers) - 1
    for index, layer in enumerate(config.recurrent_layers):
        stack.append(
            cells.cell(layer.cell).keras_layer()(
                layer.units,
                dropout=layer.dropout,
                recurrent_dropout=layer.recurrent_dropout,
                return_sequences=index < last or config.last_return_sequences,
                name=next(names),
            )
        )
    if config.hidden_dense_units:
        stack.append(layers.Dense(config.hidden_dense_units, activation="relu", name=next(names)))
    if config.output_layer:
        stack.append(layers.Dense(1, activation="sigmoid", name=next(names)))
    return keras.Sequential(stack, name="imdb_" + "_".join(layer.cell for layer in config.recurrent_layers))


def model_layers(model, config: ModelConfig):
    """The Keras layers of a build_model model: embedding, recurrent layers, head (hidden Dense, output)."""
    layers = [model.get_layer(name) for name in layer_names(config)]
    count = len(config.recurrent_layers)
    return layers[0], layers[1 : 1 + count], layers[1 + count :]


def sequence_copy(layer):
    """The same recurrent layer (same weights) returning its output at every step, for the trajectory output."""
    copy = type(layer).from_config({**layer.get_config(), "return_sequences": True, "name": layer.name + "_steps"})
    copy.build((None, None, layer.get_weights()[0].shape[0]))  # the kernel's rows are the layer's input width
    copy.set_weights(layer.get_weights())
    return copy
