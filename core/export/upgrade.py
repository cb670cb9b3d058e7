"""Upgrade a file exported before the padding skip or the steps switch, without TensorFlow: the same model, faster."""

from __future__ import annotations

import json

import numpy as np

from core.atomic import write_bytes
from core.export.model_file import (
    INPUT_NAME,
    OUTPUT_NAME,
    STEPS_SWITCH_DOC,
    STEPS_SWITCH_NAME,
    TRAJECTORY_NAME,
    has_steps_switch,
    load_session,
    read_model_file,
)
from core.export.graph import model_props
from core.export.passes.padding_skip import METADATA_KEY, UNMASKED_NEEDS_PRE, PaddingSkipError
from core.export.passes.pass_list import CLEAN_ROWS, PassInputs, complete
from core.export.parity import exceeded, output_differences
from core.data.text import pad_sequences


def upgrade_file(source, out, *, rows: int = 256, seed: int = 0) -> tuple[dict, float]:
    """Write a copy of an exported file with what this version adds, checked against the original on full padding:
    a graph that skips padding (files exported before the padding-free path), for a file with step_probability the
    steps switch (a plain run no longer computes every step), and for a masked one-layer SimpleRNN the clean-rows path:
    the passes of core.export.passes.pass_list it lacks. The weights and the metadata stay as they were (the padding
    skip's description added).

    Returns (the METADATA_KEY description, the largest |original - new| of the probability over random reviews, fed
    at full padding and cut to their own length, through the plain path and the steps path). Raises PaddingSkipError,
    writing nothing, when the file has both already or the new graph parts from the original.
    """
    import onnx

    _, proto, metadata = read_model_file(source)
    original = load_session(proto.SerializeToString(), str(source))
    has_steps = TRAJECTORY_NAME in {output.name for output in proto.graph.output}
    adds_skip = not metadata.padding_skip
    had_switch = has_steps_switch(proto)
    adds_switch = has_steps and not had_switch
    masked = metadata.config.model.mask_padding
    inputs = PassInputs.from_config(metadata.config.model, pad_id=metadata.vocabulary.pad_id)
    if adds_skip and not inputs.skips_padding:
        raise PaddingSkipError(UNMASKED_NEEDS_PRE)
    # Written only if the checks below pass.
    added = complete(proto, inputs)
    description = json.loads(model_props(proto)[METADATA_KEY])
    adds_clean_rows = CLEAN_ROWS.name in added
    if not (adds_skip or adds_switch or adds_clean_rows):
        switch = " and computes step_probability only on request" if has_steps else ""
        raise PaddingSkipError(f"{source} already skips padding{switch}")
    if adds_switch:
        proto.doc_string = f"{proto.doc_string}; {STEPS_SWITCH_DOC}" if proto.doc_string else STEPS_SWITCH_DOC
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
    # Every output of the original, its step outputs too (a file with the switch computes them only when asked).
    feed = {INPUT_NAME: full, STEPS_SWITCH_NAME: np.array(True)} if had_switch else {INPUT_NAME: full}
    expected = dict(zip(names, original.run(names, feed)))
    worst = output_differences(
        upgraded, expected, full, padding=metadata.padding, masked=masked, skips=True, pad_id=vocabulary.pad_id
    )
    failure = exceeded(worst)
    if failure is not None:
        name, difference, _ = failure
        graph = "padding-free graph" if adds_skip else "graph with the steps switch"
        raise PaddingSkipError(f"the {graph}'s {name} differs from the original by {difference:.3g}: nothing written")
    write_bytes(out, proto.SerializeToString())
    return description, worst[OUTPUT_NAME]

