"""Raw reviews through the text file with plain onnxruntime, against the Predictor and the standalone example.

    python bench/text_file.py [--model models/imdb_simplernn.onnx] [--data $IMDB_DATA] [--rounds 5] [--single 300]

Four ways to score the whole test split from its raw text, each from opening the file to the last score, as a user's
script would: the text file (model.text.onnx) in a default InferenceSession, a thousand reviews a run in file order on
one thread (the plainest loop); examples/classify_text.py (one intra-op thread a run, reviews sorted by length, 500 a
run, runs on every core); the Predictor (Predictor.from_file, then predict: the project's tokenizer, rows sorted by length,
one batch a core); examples/classify_standalone.py (the text rule in Python, every review padded to 500 ids, one run).
The example scripts run in this process with the reviews as their arguments. Then one review at a time with the file already
open: the text file's run against the Predictor's predict. Medians of --rounds rounds, interleaved; the ratios are of
this run; the scores of the three ways are checked within 1e-5 of each other first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import runpy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core.paths import DEFAULT_MODEL, data_source  # noqa: E402

BATCH = 1000  # reviews a run of the text file, as examples/classify_text.py sends them
GOALS = "faster than the standalone example; within 3x of the Predictor on the test split; one review under 1 ms"


def text_file_scores(path: Path, texts: list[str]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores = []
    for start in range(0, len(texts), BATCH):
        batch = np.array(texts[start : start + BATCH], dtype=object)
        scores.append(session.run(["probability"], {"review": batch})[0][:, 0])
    return np.concatenate(scores)


def predictor_scores(path: Path, texts: list[str]) -> np.ndarray:
    from core.scoring import Predictor

    return np.array([prediction.score for prediction in Predictor.from_file(path).predict(texts)])


def example_scores(script: str, path: Path, texts: list[str]) -> np.ndarray:
    """The scores an example script of examples/ prints for texts, run in this process with them as its arguments."""
    import json

    saved, sys.argv = sys.argv, [str(ROOT / "examples" / script), str(path), *texts]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = saved
    return np.array([json.loads(line)["score"] for line in printed.getvalue().splitlines()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="an exported ids file with its text file beside")
    parser.add_argument("--data", default=None, help="aclImdb folder or archive (default: $IMDB_DATA)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=300, help="one-review runs a round, each way")
    args = parser.parse_args()

    import onnxruntime

    from core.data import read_reviews
    from core.export import text_path
    from core.scoring import Predictor

    ids_path, text = Path(args.model), text_path(args.model)
    if not text.is_file():
        raise SystemExit(f"error: no {text}: write it with python -m core text-file --model {ids_path}")
    source = args.data or data_source()
    if not source:
        raise SystemExit("error: give --data or set IMDB_DATA: the benchmark scores the real test split")
    texts = [review.text for review in read_reviews(source, "test")]
    ways = {
        "text file: a plain loop": lambda: text_file_scores(text, texts),
        "text file: classify_text.py": lambda: example_scores("classify_text.py", text, texts),
        "Predictor (ids file)": lambda: predictor_scores(ids_path, texts),
        "classify_standalone.py (ids file)": lambda: example_scores("classify_standalone.py", ids_path, texts),
    }
    scores = {name: way() for name, way in ways.items()}  # also the warm-up round
    first = scores["text file: a plain loop"]
    for name, values in scores.items():
        worst = float(np.max(np.abs(values - first)))
        if worst > 1e-5:
            raise SystemExit(f"error: {name} differs from the text file by {worst:.3g}")
    timings: dict[str, list[float]] = {name: [] for name in ways}
    session = onnxruntime.InferenceSession(str(text), providers=["CPUExecutionProvider"])
    predictor = Predictor.from_file(ids_path)
    picked = np.random.default_rng(0).choice(len(texts), size=args.single, replace=False)
    singles: dict[str, list[float]] = {"text file, plain onnxruntime": [], "Predictor (ids file)": []}
    for _ in range(args.rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            timings[name].append(time.perf_counter() - started)
        for name in singles:
            started = time.perf_counter()
            for row in picked:
                if name.startswith("text"):
                    session.run(["probability"], {"review": np.array([texts[int(row)]], dtype=object)})
                else:
                    predictor.predict(texts[int(row)])
            singles[name].append((time.perf_counter() - started) / len(picked))
    predictor_median = statistics.median(timings["Predictor (ids file)"])
    print(f"{len(texts):,} test reviews from raw text, file opened to last score; medians of {args.rounds} rounds")
    print(f"goals: {GOALS}")
    standalone_median = statistics.median(timings["classify_standalone.py (ids file)"])
    print(f"{'way':34} {'seconds':>8} {'reviews/s':>10} {'x Predictor':>12} {'x standalone':>13}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(
            f"{name:34} {median:8.2f} {len(texts) / median:10,.0f} {median / predictor_median:12.2f} "
            f"{median / standalone_median:13.2f}"
        )
    print(f"\none review, file open; medians of {args.rounds} rounds of {len(picked)} test reviews")
    print(f"{'way':32} {'ms':>8}")
    for name, values in singles.items():
        print(f"{name:32} {statistics.median(values) * 1000:8.3f}")
    sizes = {path.name: path.stat().st_size for path in (ids_path, text)}
    print("\nsizes: " + ", ".join(f"{name} {size / 1024:,.1f} KiB" for name, size in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
