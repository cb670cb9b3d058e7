"""A plain onnxruntime user's cost: one InferenceSession on the file, run(["probability"]), rows padded to 500 ids.

    python bench/plain_session.py [--model models/imdb_simplernn.onnx] [--old FILE] [--data $IMDB_DATA]
                                  [--rows 1024] [--repeats 7] [--single-repeats 200]

What the README's standalone example does (a default InferenceSession, every review padded to sequence_length, one run
of the whole batch fetching probability) against the Predictor on the same rows, for the file exported before the steps
switch (--old; by default the new file with the switch left out by core.export.passes.pass_list.without, the same graph
the project shipped before) and for the file with it. The Predictor is measured two ways: its own session fed the same
full rows in one run (the goal's comparison: the stranger within 1.5x of it, issue 12), and predict's path (rows sorted
by length, each batch cut to its longest review, batches on every core). Medians of --repeats runs, interleaved, ratios
from this run; the scores of every way are checked equal. Last, one review at a time through the stranger's session of
each file (the RNN op's path for single reviews), to show the switch costs a single review nothing that matters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.paths import DEFAULT_MODEL, data_source  # noqa: E402

GOAL = 1.5  # the stranger's run at most this many times the Predictor's session on the same rows


def review_rows(data: str | None, vocabulary, rows: int) -> tuple[list[list[int]], str]:
    """Id lists of `rows` test reviews drawn at random (seed 0), else of random ids when no review text is at hand."""
    generator = np.random.default_rng(0)
    if data:
        from core.data import read_reviews

        reviews = read_reviews(data, "test")
        picked = generator.choice(len(reviews), size=min(rows, len(reviews)), replace=False)
        return [vocabulary.encode(reviews[int(row)].text).ids for row in picked], f"{len(picked):,} test reviews"
    sizes = generator.integers(20, 700, size=rows)
    low = vocabulary.oov_id + 1
    sequences = [
        [vocabulary.start_id, *generator.integers(low, vocabulary.num_words, size=int(size))] for size in sizes
    ]
    return sequences, f"{rows:,} rows of random ids (no IMDB_DATA)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="a file with the steps switch")
    parser.add_argument("--old", default=None, help="a file exported before the switch (default: --model undone)")
    parser.add_argument("--data", default=None, help="aclImdb folder or archive (default: $IMDB_DATA)")
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--single-repeats", type=int, default=200, help="runs of one review, each file")
    args = parser.parse_args()

    import onnx
    import onnxruntime

    from core.export import STEPS_SWITCH, without
    from core.scoring import Predictor
    from core.export import STEPS_SWITCH_NAME, has_steps_switch

    if not has_steps_switch(onnx.load(args.model)):
        raise SystemExit(f"error: {args.model} has no {STEPS_SWITCH_NAME} input: upgrade it (core.export.upgrade)")
    with tempfile.TemporaryDirectory(prefix="plain-session-") as folder:
        old_path = args.old
        if old_path is None:
            proto = onnx.load(args.model)
            without(proto, STEPS_SWITCH.name)
            old_path = str(Path(folder) / "before_switch.onnx")
            onnx.save(proto, old_path)
        files = {"before the switch": old_path, "with the switch": args.model}
        predictors = {name: Predictor.from_file(path) for name, path in files.items()}
        # What a stranger writes: default session options (every core), no project code.
        strangers = {
            name: onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]) for name, path in files.items()
        }
    new = predictors["with the switch"]
    sequences, described = review_rows(args.data or data_source(), new.metadata.vocabulary, args.rows)
    ids = new.pad(sequences)  # every row padded (pre) to sequence_length, as the standalone example pads

    runners = {}
    for name in files:
        stranger, predictor = strangers[name], predictors[name]
        runners[(name, "stranger: InferenceSession, run(['probability']), full rows")] = (
            lambda stranger=stranger: stranger.run(["probability"], {"input_ids": ids})[0].reshape(-1)
        )
        runners[(name, "Predictor's session, same full rows, one run")] = (
            lambda session=predictor.session: session.run(["probability"], {"input_ids": ids})[0].reshape(-1)
        )
        runners[(name, "Predictor.probabilities (padding cut, sorted, all cores)")] = (
            lambda predictor=predictor: predictor.probabilities(ids)
        )
    switch = {"input_ids": ids, STEPS_SWITCH_NAME: np.array(True)}
    runners[("with the switch", f"stranger, {STEPS_SWITCH_NAME}=True: run(['probability', 'step_probability'])")] = (
        lambda: strangers["with the switch"].run(["probability", "step_probability"], switch)[0].reshape(-1)
    )

    scores = {key: run() for key, run in runners.items()}  # warm-up, and the scores compared below
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for _ in range(args.repeats):
        for key, run in runners.items():  # interleaved: a busy moment of the machine hits every one
            started = time.perf_counter()
            run()
            seconds[key].append(time.perf_counter() - started)
    median = {key: statistics.median(values) for key, values in seconds.items()}

    # One review at a time, as the standalone example runs a single text: the RNN op's path; the If costs little.
    single = ids[:1]
    one = {name: [] for name in files}
    for _ in range(args.single_repeats):
        for name in files:
            started = time.perf_counter()
            strangers[name].run(["probability"], {"input_ids": single})
            one[name].append(time.perf_counter() - started)
    one_median = {name: statistics.median(values) * 1000 for name, values in one.items()}

    reference = scores[("before the switch", "stranger: InferenceSession, run(['probability']), full rows")]
    worst = max(float(np.max(np.abs(values - reference))) for values in scores.values())
    print(f"{described}, padded to {new.metadata.sequence_length} ids; medians of {args.repeats} interleaved runs (s)")
    print(f"files: before the switch = {files['before the switch']}, with the switch = {args.model}")
    print()
    print("| file | way | median (s) | rows/s | / Predictor's session | / Predictor.probabilities |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, way), value in median.items():
        session = median[(name, "Predictor's session, same full rows, one run")]
        full = median[(name, "Predictor.probabilities (padding cut, sorted, all cores)")]
        rate = len(ids) / value
        print(f"| {name} | {way} | {value:.3f} | {rate:,.0f} | {value / session:.2f}x | {value / full:.2f}x |")
    print()
    stranger_key = "stranger: InferenceSession, run(['probability']), full rows"
    before, after = median[("before the switch", stranger_key)], median[("with the switch", stranger_key)]
    ratio = after / median[("with the switch", "Predictor's session, same full rows, one run")]
    print(f"stranger's run: {before:.3f} s before the switch, {after:.3f} s with it ({before / after:.1f}x faster)")
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"goal: stranger within {GOAL}x of the Predictor's session on the same rows: {ratio:.2f}x, {verdict}")
    print(f"largest score difference between any two ways and files: {worst:.2g}")
    print(
        f"one review of {new.metadata.sequence_length} ids, stranger's run (ms, median of {args.single_repeats}): "
        f"{one_median['before the switch']:.3f} before the switch, {one_median['with the switch']:.3f} with it "
        f"({one_median['with the switch'] / one_median['before the switch']:.2f}x)"
    )
    return 0 if ratio <= GOAL and worst <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
