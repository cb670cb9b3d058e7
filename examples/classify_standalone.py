"""Classify reviews with an exported .onnx file and nothing else: python classify_standalone.py MODEL.onnx TEXT..."""

import json
import re
import sys

import numpy as np
import onnxruntime

# Errors only: onnxruntime warns at loading that the optional input with_steps (see below) has a default.
onnxruntime.set_default_logger_severity(3)
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
if meta.get("normalization") != "imdb-v1":
    sys.exit(f"unknown text rule {meta.get('normalization')!r}: this script implements imdb-v1")
index_from, length = int(meta["index_from"]), int(meta["sequence_length"])
word_ids = {word: index + index_from for index, word in enumerate(json.loads(meta["vocabulary"])) if index}
labels, threshold = json.loads(meta["labels"]), float(meta["threshold"])
token = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # imdb-v1: letters and digits, apostrophes inside words

rows = []
for text in sys.argv[2:]:
    # imdb-v1: '<br />' becomes a space, curly apostrophes straight ones, then lower case.
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE).replace("\u2019", "'").replace("\u2018", "'")
    ids = [int(meta["start_id"])] + [word_ids.get(word, int(meta["oov_id"])) for word in token.findall(text.lower())]
    ids = ids[-length:] if meta["truncating"] == "pre" else ids[:length]
    padding = [int(meta["pad_id"])] * (length - len(ids))
    rows.append(padding + ids if meta["padding"] == "pre" else ids + padding)
# One run for all the reviews. Fetching probability alone is the fast path: the file computes step_probability (the
# score after each word) only when its optional input with_steps is fed np.array(True).
inputs = {session.get_inputs()[0].name: np.array(rows, dtype=np.int32).reshape(len(rows), length)}
for score in session.run(["probability"], inputs)[0][:, 0]:
    print(json.dumps({"label": labels[1 if score >= threshold else 0], "score": float(score)}))
