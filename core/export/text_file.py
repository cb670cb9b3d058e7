"""The text file: the companion of an exported ids file that reads raw reviews, for any onnxruntime and no code of ours.

An export writes two files. model.onnx reads int32 input_ids: every runtime runs it, string tensors or not.
model.text.onnx (this module) is the same graph with the text front (core.export.passes.text_front) before it: a
string tensor of reviews in, the probability out, with the word counts that tell a review with no word the rule reads
(tokens 0) from a real score. One file, the metadata of the ids file, and a description of its text input.

No TensorFlow here: it reads the ids file and works on it with onnx, NumPy and onnxruntime.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import write_bytes
from core.data.text import pad_sequences
from core.export.model_file import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_TOLERANCE,
    STEPS_SWITCH_NAME,
    TRAJECTORY_NAME,
    ModelMetadata,
    has_steps_switch,
    load_session,
    read_model_file,
    text_path,
)
from core.export.passes.text_front import (
    CONTRIB_DOMAIN,
    LOCALE,
    ML_DOMAIN,
    TEXT_DIFFERENCES,
    TEXT_INPUT_NAME,
    TEXT_OPSET,
    TOKENS_NAME,
    UNKNOWN_NAME,
)
from core.export.passes.pass_list import TEXT_FRONT, PassInputs

__all__ = ["TEXT_METADATA_KEY", "TextFileError", "TextFileResult", "checked_text_file", "text_path", "write_text_file"]

TEXT_METADATA_KEY = "text_input"  # metadata_props key of a text file: its input, outputs and needs, as JSON
NEEDS = (
    f"string tensors; opset {TEXT_OPSET} (RegexFullMatch); {ML_DOMAIN} LabelEncoder; onnxruntime's contrib op "
    f"{CONTRIB_DOMAIN}.Tokenizer (RE2); StringNormalizer with the locale {LOCALE}"
)
# Checked at every text file: the ids through the front against core.data.text's, and the scores against the ids
# file's on the same reviews. Unusual spellings ride along with the example reviews.
CHECK_EXTRAS = (
    "Don\u2019t miss it.<br /><br />It's GREAT, rock'n'roll!",
    "\U0001f642 caf\u00e9 na\u00efve \u6771\u4eac x\u00b2 <BR/>the end",
    "",
    " ".join(["a long review"] * 300),
)


class TextFileError(ValueError):
    """The text file cannot be made or failed its check: one line says why."""


@dataclass(frozen=True)
class TextFileResult:
    """What write_text_file wrote and how well it matches the ids file."""

    path: Path
    size_bytes: int
    max_abs_diff: float  # largest |text file - ids file| of the probability on the checked reviews
    checked: int  # reviews checked
    seconds: float


def description(metadata: ModelMetadata, has_steps: bool) -> dict:
    """The text file's TEXT_METADATA_KEY entry: what goes in, what comes out, what a runtime needs."""
    outputs = {
        OUTPUT_NAME: "float32 [batch, 1]: the positive probability",
        TOKENS_NAME: "int64 [batch]: words found (0: no word the text rule reads; the probability is then the "
        "model's on an empty review: give such a review no label)",
        UNKNOWN_NAME: "int64 [batch]: of those, words outside the vocabulary",
    }
    if has_steps:
        outputs[TRAJECTORY_NAME] = (
            f"float32 [batch, steps]: the probability after each id, when {STEPS_SWITCH_NAME} is fed true "
            "(else [batch, 0]); a row's last min(tokens + 1, sequence_length) steps are its start id and words"
        )
    return {
        "input": f"{TEXT_INPUT_NAME}: string [batch], one raw review a row (UTF-8)",
        "outputs": outputs,
        "rule": metadata.vocabulary.normalization,
        "differences": list(TEXT_DIFFERENCES),
        "needs": NEEDS,
    }


def text_model(ids_proto, metadata: ModelMetadata):
    """The text file's ModelProto for an ids file's ModelProto and metadata, checked by onnx's full checker."""
    import onnx

    if TEXT_FRONT.present(ids_proto):
        raise TextFileError("this file already reads text: give the ids file (model.onnx), not model.text.onnx")
    text = onnx.ModelProto()
    text.CopyFrom(ids_proto)
    inputs = PassInputs(
        metadata.sequence_length,
        metadata.config.model.mask_padding,
        metadata.padding,
        metadata.truncating,
        pad_id=metadata.vocabulary.pad_id,
        vocabulary=metadata.vocabulary,
    )
    try:
        TEXT_FRONT.apply(text, inputs, frozenset())
    except ValueError as error:
        raise TextFileError(f"cannot put the text front before this graph: {error}") from None
    has_steps = TRAJECTORY_NAME in {value.name for value in text.graph.output}
    props = {prop.key: prop.value for prop in ids_proto.metadata_props}
    props[TEXT_METADATA_KEY] = json.dumps(description(metadata, has_steps), sort_keys=True, ensure_ascii=False)
    onnx.helper.set_model_props(text, props)
    text.producer_name = "imdb-rnn core.export.text_file"
    text.doc_string = (
        f"IMDB review sentiment from raw text: string {TEXT_INPUT_NAME} [batch] -> probability [batch, 1] (positive), "
        f"{TOKENS_NAME} and {UNKNOWN_NAME} [batch] (words found, and of those unknown: {TOKENS_NAME} 0 means no word "
        f"was read); the {metadata.vocabulary.normalization} text rule in the graph (needs {NEEDS})"
        + (f"; {STEPS_SWITCH_NAME} (bool, optional, default false) also computes step_probability" if has_steps else "")
    )
    onnx.checker.check_model(text, full_check=True)
    return text


def _check(text_data: bytes, ids_proto, metadata: ModelMetadata, reviews: Sequence[str], source: str) -> float:
    """The largest |text file - ids file| of the probability on reviews; TextFileError when the ids differ from
    core.data.text's or the scores by more than PARITY_TOLERANCE."""
    text_session = load_session(text_data, source)
    ids_session = load_session(ids_proto.SerializeToString(), source)
    probability, tokens, unknown = text_session.run(
        [OUTPUT_NAME, TOKENS_NAME, UNKNOWN_NAME], {TEXT_INPUT_NAME: np.array(list(reviews), dtype=object)}
    )
    encoded = [metadata.vocabulary.encode(review) for review in reviews]
    if tokens.tolist() != [item.tokens for item in encoded] or unknown.tolist() != [item.unknown for item in encoded]:
        raise TextFileError(f"{source}: the text front reads the checked reviews differently from core.data.text")
    rows = pad_sequences(
        [item.ids for item in encoded], metadata.sequence_length, metadata.padding, metadata.truncating
    )
    feed = {INPUT_NAME: rows, **({STEPS_SWITCH_NAME: np.array(False)} if has_steps_switch(ids_proto) else {})}
    (expected,) = ids_session.run([OUTPUT_NAME], feed)
    worst = float(np.max(np.abs(probability.astype(np.float64) - expected)))
    if not worst <= PARITY_TOLERANCE:
        raise TextFileError(
            f"{source}: the text file differs from the ids file by {worst:.3g} (limit {PARITY_TOLERANCE:g})"
        )
    return worst


def checked_text_file(ids_proto, metadata: ModelMetadata, source: str, reviews: Sequence[str] | None = None):
    """(the text file's bytes, the largest |text file - ids file| of the probability, reviews checked) for an ids
    file's ModelProto; checked on reviews (default: the example reviews and a few unusual spellings)."""
    data = text_model(ids_proto, metadata).SerializeToString()
    if reviews is None:
        from core.data.examples import EXAMPLE_REVIEWS

        reviews = [f"{title}. {body}" for title, body in EXAMPLE_REVIEWS] + list(CHECK_EXTRAS)
    return data, _check(data, ids_proto, metadata, reviews, source), len(reviews)


def write_text_file(
    ids_path: str | Path, out: str | Path | None = None, reviews: Sequence[str] | None = None
) -> TextFileResult:
    """Write the text file of the exported ids file at ids_path (default out: text_path(ids_path)), checked as
    checked_text_file checks it; nothing is written when a check fails."""
    started = time.perf_counter()
    _, proto, metadata = read_model_file(ids_path)
    out = Path(out) if out else text_path(ids_path)
    if out.resolve() == Path(ids_path).resolve():
        raise TextFileError(f"the text file would replace {ids_path}: give another --out")
    if out.is_dir():
        raise TextFileError(f"{out} is a folder: give the path of the file to write, such as {out / 'model.text.onnx'}")
    data, worst, checked = checked_text_file(proto, metadata, str(out), reviews)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, data)
    return TextFileResult(
        path=out, size_bytes=len(data), max_abs_diff=worst, checked=checked, seconds=time.perf_counter() - started
    )
