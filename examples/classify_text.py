"""Classify reviews with an exported text file and plain onnxruntime: python classify_text.py MODEL.text.onnx [TEXT...]

The file holds the whole text rule (lower case, words, vocabulary, padding): raw reviews go in as a string tensor.
With no TEXT, one review a line is read from standard input. One JSON line a review, in input order: label (null when
the review has no word the model reads), score, tokens.
"""

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime

onnxruntime.set_default_logger_severity(3)  # errors only: the optional input with_steps has a default
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1  # one core a run: the runs themselves go to every core (below)
session = onnxruntime.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
labels, threshold = json.loads(meta["labels"]), float(meta["threshold"])
reviews = sys.argv[2:] or [line.rstrip("\n") for line in sys.stdin]

# Speed, not correctness: reviews of similar length share a run (a run is as wide as its longest review), and the
# runs go to every core at once (a session serves several threads; the text ops of a run use one core).
order = sorted(range(len(reviews)), key=lambda index: len(reviews[index]))
chunks = [order[start : start + 500] for start in range(0, len(order), 500)]


def run(chunk):
    batch = np.array([reviews[index] for index in chunk], dtype=object)
    return session.run(["probability", "tokens"], {"review": batch})


results = [None] * len(reviews)
with ThreadPoolExecutor(os.cpu_count()) as pool:
    for chunk, (probability, tokens) in zip(chunks, pool.map(run, chunks)):
        for index, score, found in zip(chunk, probability[:, 0].tolist(), tokens.tolist()):
            label = (labels[1] if score >= threshold else labels[0]) if found else None
            results[index] = {"label": label, "score": score, "tokens": found}
for result in results:
    print(json.dumps(result))
