"""Model and training configuration: frozen dataclasses, validated, saved to and rebuilt from JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core import cells
from core.errors import reason

CELL_TYPES = cells.CELL_TYPES  # the registry's cell types (core.cells), importable from here as before
OPTIMIZERS = ("rmsprop", "adam", "sgd")
PAD_SIDES = ("pre", "post")
DISTRIBUTIONS = ("none", "mirrored", "multi-worker")  # core.training.distribute builds the strategy of each

MIN_VOCABULARY = 10
MAX_VOCABULARY = 200_000
MAX_SEQUENCE_LENGTH = 5_000
MAX_RECURRENT_LAYERS = 8
MAX_UNITS = 4_096
MAX_EMBEDDING_DIM = 4_096
# What training a config may need, by training_memory_bytes: far above any model of the book, and what a server can
# be asked to hold. The seed needs about 0.03 GB at batch 128.
MAX_TRAINING_BYTES = 8 * 1024**3
FLOAT_BYTES = 4
WEIGHT_COPIES = 4  # the weights, their gradients and an optimizer's two slots (Adam's; RMSprop keeps one)


def _check_int(owner: str, name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}.{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{owner}.{name} must be between {low:,} and {high:,}, got {value:,}")


def _check_fraction(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.{name} must be in [0, 1), got {value}")


def _check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_keys(cls: type, data: Any) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{cls.__name__} has unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}"
        )
    return data


@dataclass(frozen=True)
class RecurrentLayerConfig:
    """One recurrent layer of the stack."""

    cell: str = "simple_rnn"  # one of CELL_TYPES (core.cells)
    units: int = 32  # size of the state vector
    dropout: float = 0.0  # dropout on the layer's inputs, training only
    recurrent_dropout: float = 0.0  # dropout on the recurrent state, training only

    def __post_init__(self) -> None:
        _check_choice("recurrent layer", "cell", self.cell, CELL_TYPES)
        _check_int("recurrent layer", "units", self.units, 1, MAX_UNITS)
        _check_fraction("recurrent layer", "dropout", self.dropout)
        _check_fraction("recurrent layer", "recurrent_dropout", self.recurrent_dropout)

    @classmethod
    def from_dict(cls, data: Any) -> "RecurrentLayerConfig":
        return cls(**_check_keys(cls, data))


def _recurrent_layer(index: int, layer: Any) -> RecurrentLayerConfig:
    """Layer index of a config's list, with its errors naming the layer: model.recurrent_layers[1].units ..."""
    if isinstance(layer, RecurrentLayerConfig):
        return layer
    try:
        return RecurrentLayerConfig.from_dict(layer)
    except ValueError as error:
        message = str(error).replace("recurrent layer.", f"model.recurrent_layers[{index}].", 1)
        raise ValueError(message.replace("RecurrentLayerConfig", f"model.recurrent_layers[{index}]", 1)) from None


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an Embedding -> recurrent stack -> (Dense) -> Dense(1, sigmoid) classifier."""

    vocabulary_size: int = 10_000  # num_words: ids at or above it become the out-of-vocabulary id
    sequence_length: int = 500  # reviews are padded or cut to this many tokens
    embedding_dim: int = 32  # size of each word vector
    recurrent_layers: tuple[RecurrentLayerConfig, ...] = (RecurrentLayerConfig(),)
    hidden_dense_units: int = 0  # an extra Dense(relu) layer before the output; 0 for none
    output_layer: bool = True  # Dense(1, sigmoid) on top; the seed's first two cells have none
    last_return_sequences: bool = False  # the last recurrent layer returns every step (seed-rnn)
    padding: str = "pre"  # where pad ids go when a review is short (pad_sequences's default)
    truncating: str = "pre"  # which end is cut when a review is long (pad_sequences's default)
    mask_padding: bool = False  # Embedding(mask_zero=True): padded steps leave the state unchanged

    def __post_init__(self) -> None:
        layers = self.recurrent_layers
        if isinstance(layers, list):
            layers = tuple(layers)
        if not isinstance(layers, tuple):
            raise ValueError(f"model.recurrent_layers must be a list of layers, got {type(layers).__name__}")
        layers = tuple(_recurrent_layer(index, layer) for index, layer in enumerate(layers))
        object.__setattr__(self, "recurrent_layers", layers)
        _check_int("model", "vocabulary_size", self.vocabulary_size, MIN_VOCABULARY, MAX_VOCABULARY)
        _check_int("model", "sequence_length", self.sequence_length, 1, MAX_SEQUENCE_LENGTH)
        _check_int("model", "embedding_dim", self.embedding_dim, 1, MAX_EMBEDDING_DIM)
        if not 1 <= len(layers) <= MAX_RECURRENT_LAYERS:
            raise ValueError(
                f"model.recurrent_layers must hold 1 to {MAX_RECURRENT_LAYERS} layers, got {len(layers)}"
            )
        _check_int("model", "hidden_dense_units", self.hidden_dense_units, 0, MAX_UNITS)
        for name in ("output_layer", "last_return_sequences", "mask_padding"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        _check_choice("model", "padding", self.padding, PAD_SIDES)
        _check_choice("model", "truncating", self.truncating, PAD_SIDES)
        if self.last_return_sequences and (self.output_layer or self.hidden_dense_units):
            raise ValueError(
                "model.last_return_sequences needs output_layer false and no hidden Dense layer: "
                "a classifier reads only the final state"
            )
        _check_memory(self, None)  # the weights alone; ExperimentConfig checks its batches too

    @property
    def parameters(self) -> int:
        """Trainable parameters (core.model.build.describe shows them by layer)."""
        total, width = self.vocabulary_size * self.embedding_dim, self.embedding_dim
        for layer in self.recurrent_layers:
            total, width = total + cells.cell(layer.cell).parameters(width, layer.units), layer.units
        for units in ([self.hidden_dense_units] if self.hidden_dense_units else []) + ([1] if self.output_layer else []):
            total, width = total + width * units + units, units
        return total

    @property
    def is_classifier(self) -> bool:
        """True when the model ends in Dense(1, sigmoid) and can be trained on reviews."""
        return self.output_layer and not self.last_return_sequences

    def to_dict(self) -> dict:
        data = asdict(self)
        data["recurrent_layers"] = [asdict(layer) for layer in self.recurrent_layers]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "ModelConfig":
        data = dict(_check_keys(cls, data))
        if "recurrent_layers" in data and not isinstance(data["recurrent_layers"], (list, tuple)):
            raise ValueError("model.recurrent_layers must be a list of layers")
        return cls(**data)


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is trained."""

    optimizer: str = "rmsprop"  # rmsprop, adam or sgd
    learning_rate: float = 0.001  # the Keras default of rmsprop and adam
    batch_size: int = 128  # reviews per gradient step
    epochs: int = 10  # passes over the training reviews
    validation_split: float = 0.2  # share of the training reviews held out, taken from the end as Keras does
    early_stopping_patience: int = 0  # epochs without a better val_loss before stopping; 0 turns it off
    seed: int = 1337  # seeds Keras, NumPy and the data shuffle
    distribution: str = "none"  # none (one device), mirrored (this machine's devices) or multi-worker (TF_CONFIG)

    def __post_init__(self) -> None:
        _check_choice("train", "optimizer", self.optimizer, OPTIMIZERS)
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)):
            raise ValueError(f"train.learning_rate must be a number, got {self.learning_rate!r}")
        if not 0.0 < self.learning_rate <= 10.0:
            raise ValueError(f"train.learning_rate must be in (0, 10], got {self.learning_rate}")
        _check_int("train", "batch_size", self.batch_size, 1, 65_536)
        _check_int("train", "epochs", self.epochs, 1, 1_000)
        _check_fraction("train", "validation_split", self.validation_split)
        _check_int("train", "early_stopping_patience", self.early_stopping_patience, 0, 1_000)
        if self.validation_split == 0.0 and self.early_stopping_patience:
            raise ValueError("train.early_stopping_patience needs a validation_split above 0")
        _check_int("train", "seed", self.seed, 0, 2**31 - 1)
        _check_choice("train", "distribution", self.distribution, DISTRIBUTIONS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "TrainConfig":
        return cls(**_check_keys(cls, data))


def training_memory_bytes(model: ModelConfig, batch_size: int) -> int:
    """A lower estimate of the memory training needs: WEIGHT_COPIES float32 copies of the weights, and a batch's
    activations kept for the backward pass (the embedded reviews, then every layer's state and gates at every step)."""
    step_values = model.embedding_dim + sum(
        layer.units * (cells.cell(layer.cell).gates + 1) for layer in model.recurrent_layers
    )
    activations = batch_size * model.sequence_length * step_values
    return FLOAT_BYTES * (WEIGHT_COPIES * model.parameters + activations)


def _check_memory(model: ModelConfig, batch_size: int | None) -> None:
    """ValueError when training model in batches of batch_size (None: its weights alone) needs more than
    MAX_TRAINING_BYTES."""
    needed = training_memory_bytes(model, batch_size or 0)
    if needed > MAX_TRAINING_BYTES:
        of_what = f"batches of {batch_size:,}" if batch_size else "its weights alone"
        raise ValueError(
            f"this model needs about {needed / 2**30:,.1f} GiB to train ({model.parameters:,} parameters, {of_what}): "
            f"more than the {MAX_TRAINING_BYTES / 2**30:g} GiB this project allows; make the vocabulary, the "
            + ("embedding, the layers or the batches" if batch_size else "embedding or the layers")
            + " smaller"
        )


@dataclass(frozen=True)
class ExperimentConfig:
    """A model and how to train it: what a config file and a run's config.json hold."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, ModelConfig) and isinstance(self.train, TrainConfig):
            _check_memory(self.model, self.train.batch_size)

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "train": self.train.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> "ExperimentConfig":
        data = _check_keys(cls, data)
        return cls(
            model=ModelConfig.from_dict(data.get("model", {})),
            train=TrainConfig.from_dict(data.get("train", {})),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> "ExperimentConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} is not valid JSON: {error}") from None
        except RecursionError:  # json's parser recurses once a level
            raise ValueError(f"{source} is nested too deeply to be a config") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> "ExperimentConfig":
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"config file {path} is a folder, not a JSON file")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except UnicodeDecodeError:
            raise ValueError(f"config file {path} is not UTF-8 text: is it a JSON file?") from None
        except OSError as error:
            raise ValueError(f"cannot read config file {path}: {reason(error)}") from None
        return cls.from_json(text, f"config file {path}")


def _layers(*specs: tuple[str, int]) -> tuple[RecurrentLayerConfig, ...]:
    return tuple(RecurrentLayerConfig(cell=cell, units=units) for cell, units in specs)


# The seed's three cells (DLwP 6.2), then the book's next steps.
PRESETS: dict[str, ExperimentConfig] = {
    "seed-rnn": ExperimentConfig(
        ModelConfig(output_layer=False, last_return_sequences=True),
    ),
    "seed-stacked": ExperimentConfig(
        ModelConfig(recurrent_layers=_layers(*[("simple_rnn", 32)] * 4), output_layer=False),
    ),
    "seed": ExperimentConfig(ModelConfig()),
    "book-lstm": ExperimentConfig(ModelConfig(recurrent_layers=_layers(("lstm", 32)))),
    "book-gru": ExperimentConfig(ModelConfig(recurrent_layers=_layers(("gru", 32)))),
    "stacked-rnn": ExperimentConfig(ModelConfig(recurrent_layers=_layers(("simple_rnn", 32), ("simple_rnn", 32)))),
}

PRESET_DESCRIPTIONS = {
    "seed-rnn": "Embedding(10000, 32) + SimpleRNN(32, return_sequences=True): the book's first cell, no classifier",
    "seed-stacked": "Embedding(10000, 32) + 4 x SimpleRNN(32): the book's stacked cell, no classifier",
    "seed": "Embedding(10000, 32) + SimpleRNN(32) + Dense(1, sigmoid): the book's IMDB classifier",
    "book-lstm": "Embedding(10000, 32) + LSTM(32) + Dense(1, sigmoid): the book's next step (6.3)",
    "book-gru": "Embedding(10000, 32) + GRU(32) + Dense(1, sigmoid)",
    "stacked-rnn": "Embedding(10000, 32) + 2 x SimpleRNN(32) + Dense(1, sigmoid)",
}


def preset(name: str) -> ExperimentConfig:
    """The preset called name, or a ValueError that lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
