"""Classify reviews with an exported .onnx file through onnxruntime alone: no TensorFlow is imported on this path."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.text_batch import EncodedBatch, encode_batch
from core.scoring.run_guard import RunStopped, checked_probabilities, guarded_run
from core.export.model_file import (
    METADATA_KEYS,
    OUTPUT_NAME,
    TRAJECTORY_NAME,
    ModelFileError,
    ModelMetadata,
    StepsSession,
    has_steps_switch,
    label_names,
    load_session,
    model_path,
    read_model_file,
)
from core.export.passes.padding_skip import padded_lengths
from core.data.text import pad_sequences, vocabulary_map

__all__ = [
    "METADATA_KEYS",
    "ModelFileError",
    "ModelMetadata",
    "Prediction",
    "Predictor",
    "check_texts",
    "model_path",
    "vocabulary_map",
]

# Below this many rows a batch is one session.run call: splitting it would cost more in thread hand-offs than it saves.
MIN_ROWS_PER_THREAD = 16
# Rows a session.run gets when the file skips padding: rows sorted by length, so each batch is only as wide as its
# longest review. onnxruntime's recurrent kernels run small batches faster a row (see bench/padding_skip.py).
SKIP_BATCH_ROWS = 512
# predict() of more reviews than this works in chunks of this many, one a core at a time: each tokenized and scored.
PIPELINE_CHUNK = 2048


@dataclass(frozen=True)
class Prediction:
    """One review's result."""

    label: str  # labels[1] when score >= threshold, else labels[0]
    score: float  # the positive probability
    tokens: int  # words found in the text
    unknown_tokens: int  # words outside the vocabulary
    truncated: bool  # the review was longer than sequence_length ids and was cut

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "score": self.score,
            "tokens": self.tokens,
            "unknown_tokens": self.unknown_tokens,
            "truncated": self.truncated,
        }


def check_texts(texts: Sequence[str]) -> None:
    """ValueError naming the first review that is not text or is empty (blank), as predict refuses it."""
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"review {index + 1} is {type(text).__name__}, not text")
        # The same test as not text.strip(), without copying every review.
        if not text or text.isspace():
            raise ValueError("review is empty" if len(texts) == 1 else f"review {index + 1} is empty")


class Predictor:
    """An exported model ready to classify text: one onnxruntime session, safe to share between threads."""

    def __init__(self, session, metadata: ModelMetadata, path: Path | None = None, trajectory_session=None) -> None:
        """session answers probability; trajectory_session, when given, also step_probability."""
        self.session = session
        self.trajectory_session = trajectory_session
        self.metadata = metadata
        self.path = path
        self.source = str(path) if path else "the model"  # how messages name the file
        self._stopped: str | None = None  # the message of a run stopped at the time limit: the file is refused since
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(int32)" or len(inputs[0].shape) != 2:
            raise ModelFileError(f"{path or 'the model'} does not take one int32 [batch, sequence] input")
        self.input_name = inputs[0].name
        outputs = [output.name for output in session.get_outputs()]
        self.output_name = OUTPUT_NAME if OUTPUT_NAME in outputs else outputs[0]
        if trajectory_session is None and TRAJECTORY_NAME in outputs:
            self.trajectory_session = trajectory_session = session
        self.trajectory_name = None
        if trajectory_session is not None:
            names = [output.name for output in trajectory_session.get_outputs()]
            self.trajectory_name = TRAJECTORY_NAME if TRAJECTORY_NAME in names else None
        # The cores this process may use (a container's limit), not the machine's count.
        self.workers = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # False feeds every row at full sequence_length, as files without padding_skip need (the benchmark's baseline).
        self.use_padding_skip = True

    @classmethod
    def from_file(cls, path: str | Path) -> "Predictor":
        """Check and load an exported file; ModelFileError (a ValueError) with one line when it cannot be used."""
        from core.export.passes.pass_list import TEXT_FRONT, prediction_graph, without

        # A text rule this version does not know is refused with the metadata (Vocabulary checks its name).
        data, model, metadata = read_model_file(path)
        if without(model, TEXT_FRONT.name):
            # A text file (core.export.passes.text_front): its ids graph, which this class feeds with ids it makes.
            data = model.SerializeToString()
        if has_steps_switch(model):
            # One session: left at its default the switch answers probability alone; the trajectory feeds it true.
            session = load_session(data, str(path))
            return cls(session, metadata, Path(path), trajectory_session=StepsSession(session))
        # A file with step_probability exported before the switch gets a second session on a copy that answers
        # probability alone (see prediction_graph for why); the file's own graph answers the trajectory.
        if not prediction_graph(model):
            return cls(load_session(data, str(path)), metadata, Path(path))
        session = load_session(model.SerializeToString(), str(path))
        return cls(session, metadata, Path(path), trajectory_session=load_session(data, str(path)))

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Predictor":
        """The model.onnx of a run folder (made by python -m core export RUN_DIR)."""
        path = Path(run_dir) / "model.onnx"
        if not path.exists():
            raise ModelFileError(f"run {run_dir} has no model.onnx: export it with python -m core export {run_dir}")
        return cls.from_file(path)

    @property
    def has_trajectory(self) -> bool:
        return self.trajectory_name is not None

    @property
    def skips_padding(self) -> bool:
        """The file's graph takes rows shorter than sequence_length (core.export.passes.padding_skip) and the Predictor uses it."""
        return self.metadata.padding_skip is not None and self.use_padding_skip

    # Preprocess.
    def _encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Checked texts to ids and word counts: core.data.text_batch for a batch, core.data.text for a few reviews."""
        return encode_batch(texts, self.metadata.vocabulary)

    def _scores(self, encoded: EncodedBatch, batch_size: int, parallel: bool = True) -> np.ndarray:
        """sequence_probabilities(encoded.sequences()), each batch padded from the flat arrays in one NumPy step;
        parallel=False runs every batch on the calling thread."""
        metadata = self.metadata

        def rows_of(rows: np.ndarray, width: int) -> np.ndarray:
            return encoded.padded(rows, width, metadata.padding, metadata.truncating, metadata.vocabulary.pad_id)

        if not self.skips_padding:
            return self._probabilities(rows_of(np.arange(len(encoded)), metadata.sequence_length), batch_size, parallel)
        return self._sorted_scores(np.diff(encoded.offsets), batch_size, rows_of, parallel)

    def _predictions(self, encoded: EncodedBatch, scores: np.ndarray) -> list[Prediction]:
        """What _finish gives, from arrays: one Prediction a review."""
        scores = scores.astype(np.float64)
        labels = label_names(scores, self.metadata.threshold, self.metadata.labels)
        truncated = (encoded.tokens + 1 > self.metadata.sequence_length).tolist()
        return [
            Prediction(label, score, tokens, unknown, cut)
            for label, score, tokens, unknown, cut in zip(
                labels, scores.tolist(), encoded.tokens.tolist(), encoded.unknown.tolist(), truncated
            )
        ]

    def pad(self, sequences: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
        """Id lists to the int32 [batch, sequence_length] array the model was trained on; width (for files that skip
        padding) pads only to that many ids."""
        metadata = self.metadata
        return pad_sequences(
            sequences, width or metadata.sequence_length, metadata.padding, metadata.truncating, metadata.vocabulary.pad_id
        )

    # Run.
    def _guarded(self, session, names: list[str], ids: np.ndarray) -> list:
        """session.run stopped past RUN_SECONDS (core.scoring.run_guard): files come from anyone. After one run was
        stopped, every later one is refused at once: a hostile graph costs one time limit a thread, not one a batch."""
        if self._stopped is not None:
            raise ModelFileError(self._stopped)
        try:
            return guarded_run(session, names, {self.input_name: ids}, self.source)
        except RunStopped as error:
            self._stopped = str(error)
            raise

    def _run(self, ids: np.ndarray) -> np.ndarray:
        (probability,) = self._guarded(self.session, [self.output_name], ids)
        # One probability a row, or the file is refused.
        return checked_probabilities(probability, len(ids), self.source)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="predictor")
            return self._pool

    def _map(self, run: Callable[[object], np.ndarray], parts: list, parallel: bool = True) -> list[np.ndarray]:
        """run over parts, on every core when there are several parts (unless parallel is False: one after another on
        this thread, as a task of the executor must, or it could wait for tasks queued behind itself)."""
        if len(parts) == 1 or not parallel:
            return [run(part) for part in parts]
        return list(self._executor().map(run, parts))

    def probabilities(self, ids: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Positive probabilities of int32 id rows, float32 [rows]; big batches are split over all cores. A file that
        skips padding gets the rows sorted by length, each batch cut to its longest row."""
        return self._probabilities(ids, batch_size)

    def _probabilities(self, ids: np.ndarray, batch_size: int, parallel: bool = True) -> np.ndarray:
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.ndim != 2:
            raise ValueError(f"ids must be a [batch, sequence] array, got shape {ids.shape}")
        rows = len(ids)
        if rows == 0:
            return np.zeros(0, dtype=np.float32)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self.skips_padding:
            metadata = self.metadata
            lengths = padded_lengths(ids, metadata.padding, metadata.vocabulary.pad_id)
            if ids.shape[1] > metadata.sequence_length:
                # Rows wider than the model's: cut each review as pad_sequences would, not the padded row.
                pre = metadata.padding == "pre"
                ids = self.pad([row[len(row) - n :] if pre else row[:n] for row, n in zip(ids, lengths)])
                lengths = padded_lengths(ids, metadata.padding, metadata.vocabulary.pad_id)
            return self._sorted_scores(
                lengths, batch_size, lambda picked, width: ids[picked, -width:] if metadata.padding == "pre"
                else ids[picked, :width], parallel
            )
        # Enough chunks to keep every core busy, none bigger than batch_size.
        threads = min(self.workers, max(1, rows // MIN_ROWS_PER_THREAD))
        chunks = max(threads, math.ceil(rows / batch_size))
        bounds = np.linspace(0, rows, chunks + 1).astype(int)
        parts = [ids[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
        return np.concatenate(self._map(self._run, parts, parallel))

    def _sorted_scores(
        self,
        lengths: np.ndarray,
        batch_size: int,
        rows_of: Callable[[np.ndarray, int], np.ndarray],
        parallel: bool = True,
    ) -> np.ndarray:
        """Scores of rows with these lengths (ids kept, padding excluded), shortest first in batches of at most
        SKIP_BATCH_ROWS; rows_of(row_indices, width) gives a batch's ids, width columns wide."""
        lengths = np.clip(np.asarray(lengths), 1, self.metadata.sequence_length)
        order = np.argsort(lengths, kind="stable")
        # At most SKIP_BATCH_ROWS a run, and enough runs to keep every core busy.
        size = min(batch_size, SKIP_BATCH_ROWS, max(MIN_ROWS_PER_THREAD, math.ceil(len(order) / self.workers)))
        groups = [order[start : start + size] for start in range(0, len(order), size)]

        def run(group: np.ndarray) -> np.ndarray:
            return self._run(rows_of(group, int(lengths[group].max())))

        scores = np.empty(len(order), dtype=np.float32)
        scores[order] = np.concatenate(self._map(run, groups, parallel))
        return scores

    def sequence_probabilities(self, sequences: Sequence[Sequence[int]], batch_size: int = 512) -> np.ndarray:
        """Positive probabilities of unpadded id lists (start id first), float32 [rows]."""
        if not len(sequences):
            return np.zeros(0, dtype=np.float32)
        if not self.skips_padding:
            return self.probabilities(self.pad(sequences), batch_size)
        lengths = np.array([len(sequence) for sequence in sequences])
        return self._sorted_scores(
            lengths, batch_size, lambda picked, width: self.pad([sequences[row] for row in picked], width)
        )

    def predict(self, texts: str | Sequence[str], batch_size: int = 512) -> list[Prediction]:
        """One Prediction a review, in order; ValueError when a review is empty."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return []
        check_texts(texts)
        if len(texts) <= PIPELINE_CHUNK:
            encoded = self._encode(texts)
            return self._predictions(encoded, self._scores(encoded, batch_size))
        # Many reviews: in chunks of reviews about as long as each other (ordered by length in characters, which the
        # word count follows closely), so that a chunk's scoring batches pad little. Each core takes one chunk at a
        # time, tokenizes and scores it: both stages release the GIL for most of their time (NumPy and pyarrow, then
        # onnxruntime), so every core has work from the first chunk to the last. The longest chunks go first, so
        # that the chunks left for the end are short.
        order = np.argsort(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), kind="stable")
        chunks = [order[start : start + PIPELINE_CHUNK] for start in range(0, len(texts), PIPELINE_CHUNK)][::-1]

        def score(rows: np.ndarray) -> tuple[np.ndarray, EncodedBatch, np.ndarray]:
            encoded = self._encode([texts[row] for row in rows.tolist()])
            return rows, encoded, self._scores(encoded, batch_size, parallel=False)

        results: list[Prediction] = [None] * len(texts)  # type: ignore[list-item] - every slot is filled below
        for rows, encoded, scores in self._executor().map(score, chunks):
            for row, prediction in zip(rows.tolist(), self._predictions(encoded, scores)):
                results[row] = prediction
        return results

    def step_probabilities(self, ids: Sequence[int], words_read: int) -> np.ndarray:
        """step_probability after each of the last words_read ids of one review's id list (start id first), as the
        model reads it: padded, cut, and fed only as wide as the review when the file skips padding; ValueError when
        the file has no step_probability output."""
        if self.trajectory_name is None:
            raise ValueError(
                f"{self.path or 'this model'} has no step_probability output: re-export it with --trajectory"
            )
        length = self.metadata.sequence_length
        kept = min(len(ids), length)
        padded = self.pad([ids], kept if self.skips_padding else None)
        (steps,) = self._guarded(self.trajectory_session, [self.trajectory_name], padded)
        checked_probabilities(steps, steps.size, self.source, self.trajectory_name)
        row = steps[0]
        values = row[len(row) - kept :] if self.metadata.padding == "pre" else row[:kept]
        # The ids kept are the start id (unless truncation cut it) and the words read: the words' steps come last.
        return np.asarray(values[len(values) - words_read :], dtype=np.float32)
