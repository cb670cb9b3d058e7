"""The text front: a graph that turns raw reviews into the ids the model reads, put in front of an exported ids file.

The file it makes reads a string tensor of reviews and answers the ids file's outputs, with nothing of this project's
code: stock onnxruntime's operators apply the imdb-v1 rule (core.data.text) inside the graph.

    review [batch] string
      -> StringNormalizer (lower case, locale C.UTF-8: a locale every Linux has)
      -> com.microsoft.Tokenizer (RE2): the words, and the '<br />' line breaks as tokens of their own
      -> ai.onnx.ml.LabelEncoder: word -> id (the Tokenizer's padding to -1, the rest to the out-of-vocabulary id)
      -> RegexFullMatch, on the out-of-vocabulary pieces only: which are line breaks (-1 too)
      -> the start id and the words placed as the model pads and truncates them (a running count of the words gives
         each its column; one ScatterElements), only as wide as the batch's longest review when the ids file skips
         padding: clean pre-padded rows, the ids graph's fast path
      -> input_ids -> the ids file's graph, unchanged

Curly apostrophes, which imdb-v1 makes straight before it tokenizes, are read as joiners by the Tokenizer and sent to
the same id by extra LabelEncoder keys (every spelling of a vocabulary word with them). What cannot be made equal is
lower-casing: onnxruntime lower-cases one code point at a time (towlower), Python's str.lower by the Unicode rules
(a dotted capital I becomes two code points, a final capital sigma its final form). TEXT_DIFFERENCES names them.

No TensorFlow here: the pass reads a file made by core.export.convert and works on it with onnx and NumPy.
"""

from __future__ import annotations

import itertools

import numpy as np

from core.data.text import Vocabulary
from core.export.model_file import INPUT_NAME

TEXT_INPUT_NAME = "review"  # string [batch]: one raw review a row
TOKENS_NAME = "tokens"  # int64 [batch]: words found in the review (0: a review with no word the rule reads)
UNKNOWN_NAME = "unknown_tokens"  # int64 [batch]: of those, words outside the vocabulary
TEXT_OPSET = 20  # RegexFullMatch is in the default domain from opset 20
CONTRIB_DOMAIN = "com.microsoft"
ML_DOMAIN = "ai.onnx.ml"
LOCALE = "C.UTF-8"  # StringNormalizer's default (en_US.UTF-8) fails at session creation where it is not installed
PREFIX = "text_front/"
PAD_TOKEN = "<pad>"  # the Tokenizer pads short rows with it; no token of the rule starts with '<'
NOT_A_WORD = -1  # the front's id for the Tokenizer's padding and line breaks, which never reach the model

# Python's str.isspace characters, as RE2 escapes: imdb-v1 reads '<br', any of these, then '/>' or '>' as a space.
_SPACES = r"\t\n\x{0b}\f\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
_LETTERS = r"\p{L}\p{N}"  # Python's [^\W_] for letters and digits; marks (\p{M}) are not word characters in either
_APOSTROPHES = "'\u2018\u2019"
TOKEN_PATTERN = rf"<br[{_SPACES}]*/?>|[{_LETTERS}]+(?:['\x{{2018}}\x{{2019}}][{_LETTERS}]+)*"
DROPPED_PATTERN = "(?s)<.*"  # line breaks: every other token starts with a letter or a digit
# Every spelling of a word with up to this many apostrophes gets a key (3 ** count of them); longer ones keep only
# their straight spelling: a review that writes such a word with curly apostrophes reads it as unknown.
MAX_CURLY_APOSTROPHES = 3

TEXT_DIFFERENCES = (
    "lower case: onnxruntime's StringNormalizer lower-cases one code point at a time, Python's str.lower by Unicode's "
    "full rules: 'İ' (U+0130) becomes 'i' here and 'i' + U+0307 (which ends the word) in Python; a final 'Σ' becomes "
    "'σ' here and 'ς' in Python; where the C library's Unicode tables are older than Python's, a few rare capitals "
    "stay as they are",
    f"curly apostrophes: a vocabulary word with more than {MAX_CURLY_APOSTROPHES} apostrophes is known only in its "
    "straight spelling",
)


def _spellings(word: str) -> list[str]:
    """word and its spellings with curly apostrophes in place of straight ones."""
    count = word.count("'")
    if not count or count > MAX_CURLY_APOSTROPHES:
        return [word]
    parts = word.split("'")
    spelled = []
    for marks in itertools.product(_APOSTROPHES, repeat=count):
        spelled.append("".join(part + mark for part, mark in zip(parts, (*marks, ""))))
    return spelled


def vocabulary_keys(vocabulary: Vocabulary) -> tuple[list[str], list[int]]:
    """The LabelEncoder's keys and values: every vocabulary word (with its curly spellings) and its id."""
    keys: list[str] = []
    values: list[int] = []
    for position, word in enumerate(vocabulary.words):
        if not position:
            continue  # the reserved slot is no word
        for spelling in _spellings(word):
            keys.append(spelling)
            values.append(position + vocabulary.index_from)
    return keys, values


class TextFrontError(ValueError):
    """The ids file cannot get a text front: one line says why."""


def _front_nodes(vocabulary: Vocabulary, sequence_length: int, padding: str, truncating: str, skips_padding: bool):
    """The front's nodes and initializers: review -> input_ids (int32), tokens and unknown_tokens.

    Only the pieces the vocabulary does not know (unknown words, line breaks) go through the regex; the words are
    placed in their columns by one ScatterElements (each word's column from a running count of the words before it),
    so the work a batch costs beyond the Tokenizer is a few passes of integer arithmetic over its pieces."""
    from onnx import TensorProto, helper, numpy_helper

    def name(tensor: str) -> str:
        return PREFIX + tensor

    initializers = []

    def constant(tensor: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name(tensor)))
        return name(tensor)

    nodes = []

    def node(op: str, inputs: list[str], outputs: list[str], domain: str = "", **attributes) -> list[str]:
        outputs = [output if output in (INPUT_NAME, TOKENS_NAME, UNKNOWN_NAME) else name(output) for output in outputs]
        label = name(f"{op}_{len(nodes)}")
        nodes.append(helper.make_node(op, inputs, outputs, name=label, domain=domain, **attributes))
        return outputs

    keys, values = vocabulary_keys(vocabulary)
    int64 = TensorProto.INT64
    zero, one = constant("zero", np.array(0, np.int64)), constant("one", np.array(1, np.int64))
    row_axis = constant("row_axis", np.array([1], np.int64))
    not_word = constant("not_word", np.array(NOT_A_WORD, np.int64))
    oov = constant("oov", np.array(vocabulary.oov_id, np.int64))
    (lower,) = node(
        "StringNormalizer", [TEXT_INPUT_NAME], ["lower"], case_change_action="LOWER", is_case_sensitive=1, locale=LOCALE
    )
    (pieces,) = node(
        "Tokenizer",
        [lower],
        ["pieces"],
        domain=CONTRIB_DOMAIN,
        mark=0,
        mincharnum=1,
        pad_value=PAD_TOKEN,
        tokenexp=TOKEN_PATTERN,
    )
    # Words to their ids, the Tokenizer's padding to NOT_A_WORD, everything else (unknown words, line breaks) to OOV.
    (looked_up,) = node(
        "LabelEncoder",
        [pieces],
        ["looked_up"],
        domain=ML_DOMAIN,
        keys_strings=[*keys, PAD_TOKEN],
        values_int64s=[*values, NOT_A_WORD],
        default_int64=vocabulary.oov_id,
    )
    # The OOV pieces that are line breaks become NOT_A_WORD too: the regex reads those pieces only.
    (flat,) = node("Reshape", [looked_up, constant("flat_shape", np.array([-1], np.int64))], ["flat"])
    (is_oov,) = node("Equal", [flat, oov], ["is_oov"])
    (where_oov,) = node("NonZero", [is_oov], ["where_oov"])
    (oov_positions,) = node("Squeeze", [where_oov, constant("first_axis", np.array([0], np.int64))], ["oov_positions"])
    (flat_pieces,) = node("Reshape", [pieces, constant("flat_shape_2", np.array([-1], np.int64))], ["flat_pieces"])
    (oov_pieces,) = node("Gather", [flat_pieces, oov_positions], ["oov_pieces"], axis=0)
    (is_break,) = node("RegexFullMatch", [oov_pieces], ["is_break"], pattern=DROPPED_PATTERN)
    (oov_values,) = node("Where", [is_break, not_word, oov], ["oov_values"])
    (fixed,) = node("ScatterElements", [flat, oov_positions, oov_values], ["fixed"], axis=0)
    (pieces_shape,) = node("Shape", [looked_up], ["pieces_shape"])
    (word_ids,) = node("Reshape", [fixed, pieces_shape], ["word_ids"], allowzero=1)  # a batch with no piece: [batch, 0]
    (is_word,) = node("Greater", [word_ids, not_word], ["is_word"])
    (word_number,) = node("Cast", [is_word], ["word_number"], to=int64)
    (rank,) = node("CumSum", [word_number, constant("cumsum_axis", np.array(1, np.int64))], ["rank"])
    (words,) = node("ReduceSum", [word_number, row_axis], [TOKENS_NAME], keepdims=0)
    (is_unknown,) = node("Equal", [word_ids, oov], ["is_unknown"])
    (unknown_number,) = node("Cast", [is_unknown], ["unknown_number"], to=int64)
    node("ReduceSum", [unknown_number, row_axis], [UNKNOWN_NAME], keepdims=0)
    # Each row's sequence (the start id, then its words: n ids) as the model pads and truncates it: its
    # m = min(n, sequence_length) kept ids from column `first` (width - m when pre-padding, else 0), the last m
    # (pre-truncating) or the first. Sequence index i goes to column i + shift.
    (word_column,) = node("Unsqueeze", [words, row_axis], ["word_column"])
    (length,) = node("Add", [word_column, one], ["length"])
    limit = constant("sequence_length", np.array(sequence_length, np.int64))
    (kept,) = node("Min", [length, limit], ["kept"])
    if skips_padding:
        (longest,) = node("ReduceMax", [kept], ["longest"], keepdims=0)
        (width,) = node("Max", [longest, one], ["width"])
    else:
        width = limit
    if padding == "pre":
        (first,) = node("Sub", [width, kept], ["first"])
    else:
        (first,) = node("Mul", [kept, zero], ["first"])
    if truncating == "pre":
        (cut,) = node("Sub", [length, kept], ["cut"])
        (shift,) = node("Sub", [first, cut], ["shift"])
    else:
        shift = first
    (end,) = node("Add", [first, kept], ["end"])
    (column,) = node("Add", [rank, shift], ["column"])
    (after_first,) = node("GreaterOrEqual", [column, first], ["after_first"])
    (before_end,) = node("Less", [column, end], ["before_end"])
    (in_window,) = node("And", [after_first, before_end], ["in_window"])
    (placed,) = node("And", [in_window, is_word], ["placed"])
    # Pieces not placed go to one extra column, dropped at the end.
    (target,) = node("Where", [placed, column, width], ["target"])
    (width_plus,) = node("Add", [width, one], ["width_plus"])
    (columns,) = node("Range", [zero, width_plus, one], ["columns"])
    (at_start,) = node("Equal", [columns, shift], ["at_start"])
    (start_kept,) = node("GreaterOrEqual", [shift, first], ["start_kept"])
    (start_here,) = node("And", [at_start, start_kept], ["start_here"])
    start = constant("start", np.array(vocabulary.start_id, np.int64))
    pad = constant("pad", np.array(vocabulary.pad_id, np.int64))
    (base,) = node("Where", [start_here, start, pad], ["base"])
    (scattered,) = node("ScatterElements", [base, target, word_ids], ["scattered"], axis=1)
    (width_list,) = node("Reshape", [width, constant("one_shape", np.array([1], np.int64))], ["width_list"])
    zero_list = constant("zero_list", np.array([0], np.int64))
    (sliced,) = node("Slice", [scattered, zero_list, width_list, row_axis], ["ids"])
    node("Cast", [sliced], [INPUT_NAME], to=TensorProto.INT32)
    value_info = [helper.make_tensor_value_info(pieces, TensorProto.STRING, ["batch", "pieces"])]
    return nodes, initializers, value_info


def _version(proto, domain: str) -> int:
    return max((entry.version for entry in proto.opset_import if entry.domain == domain), default=0)


def with_text_front(ids_proto, vocabulary: Vocabulary, sequence_length: int, padding: str, truncating: str):
    """A new ModelProto: the text front, then ids_proto's graph (converted to TEXT_OPSET), reading review [batch]
    strings and answering its outputs plus tokens and unknown_tokens. ids_proto itself is not changed."""
    import onnx
    from onnx import TensorProto, helper, version_converter

    if has_text_front(ids_proto):
        raise TextFrontError("the file already has a text front")
    if [value.name for value in ids_proto.graph.input][:1] != [INPUT_NAME]:
        raise TextFrontError(f"the ids file's first input is not {INPUT_NAME}")
    from core.export.passes.padding_skip import METADATA_KEY

    skips = any(prop.key == METADATA_KEY and prop.value for prop in ids_proto.metadata_props)
    converted = onnx.ModelProto()
    converted.CopyFrom(ids_proto)
    if _version(converted, "") < TEXT_OPSET:
        try:
            converted = version_converter.convert_version(converted, TEXT_OPSET)
        except Exception as error:  # the converter raises its own types for ops it has no adapter for
            raise TextFrontError(f"cannot convert the ids graph to opset {TEXT_OPSET}: {error}") from None
    nodes, initializers, value_info = _front_nodes(vocabulary, sequence_length, padding, truncating, skips)
    new = converted.graph
    kept_inputs = [value for value in new.input if value.name != INPUT_NAME]
    del new.input[:]
    new.input.extend([helper.make_tensor_value_info(TEXT_INPUT_NAME, TensorProto.STRING, ["batch"]), *kept_inputs])
    old_nodes = list(new.node)
    del new.node[:]
    new.node.extend([*nodes, *old_nodes])
    new.initializer.extend(initializers)
    new.value_info.extend(value_info)
    new.output.extend(
        [
            helper.make_tensor_value_info(TOKENS_NAME, TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info(UNKNOWN_NAME, TensorProto.INT64, ["batch"]),
        ]
    )
    versions = {entry.domain: entry.version for entry in converted.opset_import}
    versions[""] = max(versions.get("", 0), TEXT_OPSET)
    versions[ML_DOMAIN] = max(versions.get(ML_DOMAIN, 0), 2)
    versions[CONTRIB_DOMAIN] = max(versions.get(CONTRIB_DOMAIN, 0), 1)
    del converted.opset_import[:]
    converted.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in sorted(versions.items()))
    return converted


def has_text_front(proto) -> bool:
    """Whether a ModelProto reads review strings through this module's front."""
    return any(value.name == TEXT_INPUT_NAME for value in proto.graph.input) and any(
        node.name.startswith(PREFIX) for node in proto.graph.node
    )


def ids_part(proto):
    """A copy of a text file's model without its front: the ids graph it was made from, reading input_ids."""
    import onnx
    from onnx import TensorProto, helper

    ids = onnx.ModelProto()
    ids.CopyFrom(proto)
    graph = ids.graph
    kept_nodes = [node for node in graph.node if not node.name.startswith(PREFIX)]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    kept_initializers = [tensor for tensor in graph.initializer if not tensor.name.startswith(PREFIX)]
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers)
    kept_info = [value for value in graph.value_info if not value.name.startswith(PREFIX)]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    outputs = [value for value in graph.output if value.name not in (TOKENS_NAME, UNKNOWN_NAME)]
    del graph.output[:]
    graph.output.extend(outputs)
    inputs = [value for value in graph.input if value.name != TEXT_INPUT_NAME]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT32, ["batch", "sequence"]), *inputs])
    used = {node.domain for node in graph.node}
    kept_opsets = [entry for entry in ids.opset_import if entry.domain != CONTRIB_DOMAIN or CONTRIB_DOMAIN in used]
    del ids.opset_import[:]
    ids.opset_import.extend(kept_opsets)
    return ids


def front_model(vocabulary: Vocabulary, sequence_length: int, padding: str, truncating: str, skips_padding: bool):
    """The front alone as a model: review [batch] -> input_ids [batch, width] int32, tokens, unknown_tokens (for
    checking its ids against core.data.text's)."""
    from onnx import TensorProto, helper

    nodes, initializers, value_info = _front_nodes(vocabulary, sequence_length, padding, truncating, skips_padding)
    graph = helper.make_graph(
        nodes,
        "text_front",
        [helper.make_tensor_value_info(TEXT_INPUT_NAME, TensorProto.STRING, ["batch"])],
        [
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT32, ["batch", "sequence"]),
            helper.make_tensor_value_info(TOKENS_NAME, TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info(UNKNOWN_NAME, TensorProto.INT64, ["batch"]),
        ],
        initializers,
        value_info=value_info,
    )
    opsets = [("", TEXT_OPSET), (ML_DOMAIN, 2), (CONTRIB_DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(*entry) for entry in opsets])
