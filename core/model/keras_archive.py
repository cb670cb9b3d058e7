"""A run's model.keras read with zipfile and h5py, without TensorFlow: its weights as core.model.numpy_loop.ModelWeights."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from core import cells
from core.model.numpy_loop import DenseWeights, ModelWeights, RecurrentWeights, model_weights


def weights_group(class_name: str) -> str:
    """The snake-case name Keras 3 gives a layer class in model.weights.h5 (SimpleRNN -> simple_rnn), as Keras's
    own naming.to_snake_case makes it."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_model_weights(path: str | Path) -> ModelWeights:
    """The weights of a model.keras archive as NumPy arrays; ValueError when it cannot be read or has a layer the
    NumPy reference cannot run. Keras stores a layer's weights under its class name in snake case, numbered from the
    second layer of that class on (dense, dense_1, ...), in the order of model.layers."""
    import h5py

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            layers = json.loads(archive.read("config.json"))["config"]["layers"]
            weights_file = io.BytesIO(archive.read("model.weights.h5"))
    except (OSError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read as a Keras model: {error}") from None
    seen: dict[str, int] = {}
    embedding, mask_zero, recurrent, dense = None, False, [], []
    try:
        with h5py.File(weights_file, "r") as weights:
            for layer in layers:
                kind, settings = layer["class_name"], layer["config"]
                cell = cells.by_keras_class(kind)
                if kind == "InputLayer":
                    continue
                if kind not in ("Embedding", "Dense") and cell is None:
                    raise ValueError(f"layer {settings.get('name')} ({kind}) has no NumPy reference")
                base = weights_group(kind)
                count = seen.get(base, 0)
                seen[base] = count + 1
                group = weights["layers"][base if count == 0 else f"{base}_{count}"]
                if cell is not None:
                    cell.check_reference_settings(settings.get("name"), settings)
                    arrays = [np.asarray(group["cell"]["vars"][str(index)]) for index in range(3)]
                    sequences = bool(settings.get("return_sequences", False))
                    recurrent.append(RecurrentWeights(cell.name, *arrays, sequences))
                elif kind == "Embedding":
                    embedding, mask_zero = np.asarray(group["vars"]["0"]), bool(settings.get("mask_zero", False))
                else:
                    kernel, bias = np.asarray(group["vars"]["0"]), np.asarray(group["vars"]["1"])
                    dense.append(DenseWeights(kernel, bias, settings["activation"]))
    except (OSError, KeyError, TypeError) as error:
        raise ValueError(f"{path} has weights that cannot be read: {error}") from None
    return model_weights(embedding, mask_zero, recurrent, dense, source=str(path))
