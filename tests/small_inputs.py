"""Small inputs for the tests: a made-up archive, run folders, a tiny Keras run, small models of every cell kind."""

from __future__ import annotations

import io
import json
import random
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig, TrainConfig, preset
from core.data.examples import EXAMPLE_REVIEWS
from core.data.text import Vocabulary, tokenize
from core.runs import store as runs
from core.runs.store import RunStore

TINY_CONFIG = {
    "model": {"vocabulary_size": 60, "sequence_length": 20, "embedding_dim": 8, "recurrent_layers": [{"units": 8}]},
    "train": {"batch_size": 16, "epochs": 3, "learning_rate": 0.01},
}


def build_archive(path: Path, per_class: int, seed: int = 0) -> Path:
    """A small aclImdb_v1.tar.gz of made-up reviews: positive ones say "great", negative ones "awful"."""
    rng = random.Random(seed)
    filler = [f"word{i}" for i in range(40)]
    with tarfile.open(path, "w:gz") as archive:
        for split in ("train", "test"):
            for folder, word, rating in (("pos", "great", 8), ("neg", "awful", 2)):
                for index in range(per_class):
                    words = [rng.choice(filler) for _ in range(rng.randint(5, 15))]
                    words.insert(rng.randint(0, len(words)), word)
                    data = " ".join(words).encode()
                    member = tarfile.TarInfo(f"aclImdb/{split}/{folder}/{index}_{rating}.txt")
                    member.size = len(data)
                    archive.addfile(member, io.BytesIO(data))
    return path


KERAS_RUN_CONFIG = ModelConfig(
    vocabulary_size=200, sequence_length=40, embedding_dim=8, recurrent_layers=(RecurrentLayerConfig("simple_rnn", 8),)
)


def write_keras_run(folder: Path) -> Path:
    """A run folder as core.runs.store leaves it, after a few training steps on random ids."""
    from core.model.build import build_model

    folder.mkdir(parents=True)
    model = build_model(KERAS_RUN_CONFIG)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    generator = np.random.default_rng(0)
    ids = generator.integers(
        1, KERAS_RUN_CONFIG.vocabulary_size, size=(64, KERAS_RUN_CONFIG.sequence_length), dtype=np.int32
    )
    model.fit(ids, generator.integers(0, 2, 64), epochs=1, batch_size=16, verbose=0)
    model.save(folder / "model.keras")
    vocabulary = Vocabulary.build([tokenize(text) for _, text in EXAMPLE_REVIEWS], KERAS_RUN_CONFIG.vocabulary_size)
    (folder / "config.json").write_text(ExperimentConfig(KERAS_RUN_CONFIG, TrainConfig(epochs=1)).to_json())
    (folder / "vocab.json").write_text(json.dumps(vocabulary.to_dict()))
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "test_loss": 0.7, "test_n": 64}))
    (folder / "history.json").write_text(json.dumps({"loss": [0.7], "accuracy": [0.5]}))
    (folder / "run.json").write_text(json.dumps({"status": "finished", "data": {"source": "random ids", "path": None}}))
    return folder


VOCABULARY = Vocabulary(words=("<unused>", "good", "bad"), num_words=10)
DATA = {"source": "toy", "kind": "csv", "limit": None, "path": None}


def fake_model(path: Path) -> None:
    """A stand-in model.keras: the store only checks that the archive is whole and holds config and weights."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * 4096)


def finished_run(store: RunStore, epochs: int = 2) -> Path:
    """A finished run in the store, with a stand-in model, its history and test metrics."""
    run_dir = store.create(preset("seed"), VOCABULARY, DATA)
    history = {"loss": [0.6] * epochs, "accuracy": [0.7] * epochs, "val_loss": [0.5] * epochs}
    history["val_accuracy"] = [0.8] * epochs
    runs.write_history(run_dir, history)
    fake_model(run_dir / "model.keras")
    runs.write_metrics(run_dir, {"test_accuracy": 0.8, "test_loss": 0.5, "test_n": 10, "best_epoch": 1})
    runs.set_status(run_dir, "finished")
    return run_dir


CASE_LENGTH = 60  # the sequence length of CELL_CASES


def cell_config(*cells, **changes) -> ModelConfig:
    """A small model of these recurrent cells (8 units each), with changes."""
    layers = tuple(RecurrentLayerConfig(cell, 8) for cell in cells)
    values = dict(vocabulary_size=200, sequence_length=CASE_LENGTH, embedding_dim=8, recurrent_layers=layers)
    values.update(changes)
    return ModelConfig(**values)


# Every kind of recurrent stack the export handles, masked and not.
CELL_CASES = {
    "simple_rnn": cell_config("simple_rnn"),
    "lstm": cell_config("lstm", hidden_dense_units=4),
    "gru": cell_config("gru"),
    "stacked": cell_config("simple_rnn", "lstm", "gru"),
    "masked_simple_rnn": cell_config("simple_rnn", mask_padding=True),
    "masked_stack": cell_config("gru", "simple_rnn", mask_padding=True),
    "masked_post": cell_config("lstm", mask_padding=True, padding="post", truncating="post"),
}


def example_vocabulary(num_words: int) -> Vocabulary:
    """A vocabulary of the project's own example reviews."""
    return Vocabulary.build([tokenize(f"{title} {text}") for title, text in EXAMPLE_REVIEWS], num_words)


def randomized(model, seed: int = 3):
    """Weights drawn here alone (never from Keras's initializers, whose draws depend on what ran before), large
    enough that the padding moves the state far from zero, as trained weights do. (Much larger ones make a float32
    recurrence chaotic: Keras and onnxruntime then part by more than 1e-5 even on full padding.)"""
    generator = np.random.default_rng(seed)
    model.set_weights([generator.normal(0, 0.4, w.shape).astype("float32") for w in model.get_weights()])
    return model


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True
