"""Upgrade a file exported before the padding-free path, without TensorFlow: the same model, skipping padding."""

from __future__ import annotations

import json

import numpy as np

from core.atomic import write_bytes
from core.batched_rnn import batched_simple_rnn
from core.model_file import INPUT_NAME, OUTPUT_NAME, load_session, read_model_file
from core.onnx_graph import model_props
from core.padding_skip import METADATA_KEY, PaddingSkipError, skip_padding
from core.parity import exceeded, output_differences
from core.text import pad_sequences


def upgrade_file(source, out, *, rows: int = 256, seed: int = 0) -> tuple[dict, float]:
    """Write a copy of an exported file whose graph skips padding, checked against the original on full padding.

    For files exported before the padding-free path existed. Returns (the METADATA_KEY description, the largest
    |original - new| of the probability over random reviews cut to their own length). Raises PaddingSkipError.
    """
    import onnx

    _, proto, metadata = read_model_file(source)
    if metadata.padding_skip:
        raise PaddingSkipError(f"{source} already skips padding")
    masked = metadata.config.model.mask_padding
    original = load_session(proto.SerializeToString(), str(source))
    description = skip_padding(
        proto,
        metadata.sequence_length,
        masked=masked,
        padding=metadata.padding,
        truncating=metadata.truncating,
        pad_id=metadata.vocabulary.pad_id,
    )
    batched_simple_rnn(proto)
    onnx.checker.check_model(proto, full_check=True)
    upgraded = load_session(proto.SerializeToString(), str(out))
    # Random reviews of every length, as the Predictor pads them.
    generator = np.random.default_rng(seed)
    length = metadata.sequence_length
    vocabulary = metadata.vocabulary
    low = vocabulary.oov_id + 1
    sequences = [
        [vocabulary.start_id, *generator.integers(low, vocabulary.num_words, size=int(size) - 1)]
        for size in generator.integers(1, length + 40, size=rows)
    ]
    full = pad_sequences(sequences, length, metadata.padding, metadata.truncating, vocabulary.pad_id)
    names = [output.name for output in original.get_outputs()]
    expected = dict(zip(names, original.run(names, {INPUT_NAME: full})))
    worst = output_differences(
        upgraded, expected, full, padding=metadata.padding, masked=masked, skips=True, pad_id=vocabulary.pad_id
    )
    failure = exceeded(worst)
    if failure is not None:
        name, difference, _ = failure
        raise PaddingSkipError(
            f"the padding-free graph's {name} differs from the original by {difference:.3g}: nothing written"
        )
    onnx.helper.set_model_props(proto, {**model_props(proto), METADATA_KEY: json.dumps(description, sort_keys=True)})
    write_bytes(out, proto.SerializeToString())
    return description, worst[OUTPUT_NAME]
