"""Scoring the test reviews from a Parquet file: the local engine against a Ray Data job on a local Ray (start-up
cost and rows/s), medians of a few runs. Needs IMDB_DATA and ray; usage: python bench/ray_scoring.py [--repeats N]."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the local Ray on 127.0.0.1, as the CLI starts it

import pyarrow as pa
import pyarrow.parquet as pq

from core.data import read_reviews
from core.scoring import Predictor, import_ray, model_path, predict_table, score_on_ray, write_predictions


def _median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    source = os.environ.get("IMDB_DATA")
    if not source:
        print("set IMDB_DATA to the IMDB archive", file=sys.stderr)
        return 2
    model = model_path(args.model)
    texts = [review.text for review in read_reviews(source, "test")]
    ray = import_ray()
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as folder:
        folder = Path(folder)
        reviews = folder / "test.parquet"
        pq.write_table(pa.table({"text": texts}), reviews, row_group_size=4096)
        # Ten reviews: what a job costs whatever its size (planning, starting the workers, loading the model).
        tiny = folder / "ten.parquet"
        pq.write_table(pa.table({"text": texts[:10]}), tiny)
        rows = len(texts)

        predictor = Predictor.from_file(model)
        local_out = folder / "local.parquet"
        local = _median_seconds(
            lambda: write_predictions(predict_table(predictor, reviews), local_out, predictor.metadata.labels),
            args.repeats,
        )
        results = [("local engine (Predictor, threads on every core)", None, None, local)]
        for cpus, workers in ((os.cpu_count() or 1, None), ((os.cpu_count() or 1) + 1, 2)):
            started = time.perf_counter()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            start_up = time.perf_counter() - started
            out = folder / f"ray-{cpus}.parquet"
            job = _median_seconds(lambda: score_on_ray(model, reviews, out, workers=workers), args.repeats)
            fixed = _median_seconds(lambda: score_on_ray(model, tiny, folder / "ten-out.parquet", workers=workers), 3)
            ray.shutdown()
            assert pq.read_table(out).column("score").equals(pq.read_table(local_out).column("score"))
            pool = workers or max(1, cpus - 1)
            results.append((f"ray, {pool} worker{'s' * (pool > 1)} (num_cpus={cpus})", start_up, fixed, job))
    print(f"{rows:,} test reviews, {os.cpu_count()} cores, medians of {args.repeats} runs; scores equal to the local "
          "engine's, row for row")
    print()
    print("| engine | Ray start-up (s) | job of 10 rows (s) | all rows (s) | rows/s | rows/s past the job's fixed cost "
          "| vs local |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, start_up, fixed, seconds in results:
        start = "" if start_up is None else f"{start_up:.1f}"
        ten = "" if fixed is None else f"{fixed:.2f}"
        marginal = rows / seconds if fixed is None else rows / max(seconds - fixed, 1e-9)
        print(f"| {name} | {start} | {ten} | {seconds:.2f} | {rows / seconds:,.0f} | {marginal:,.0f} "
              f"| {local / seconds:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
