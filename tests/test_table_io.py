"""core.scoring.table_io: predict --input/--out reads and writes CSV or Parquet by extension, in order, in bounded memory;
bad input is one error line and no output file."""

import csv
import json
import sys
import tracemalloc

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.cli import main
from core.scoring.files import OUTPUT_COLUMNS
from core.scoring.predictor import Predictor
from core.scoring.table_io import output_schema, parquet_bytes, predict_parquet, score_table, write_predictions
from tests.float_checks import assert_close, assert_same_records
from tests.hand_built_file import build_model
from tests.small_inputs import Terminal

TEXTS = ["good movie", "   ", "awful boring plot", "great " * 100, "a, \"quoted\"\nreview", "émouvant 素晴らしい"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table-io") / "tiny.onnx"
    onnx.save(build_model(), path)
    return path


@pytest.fixture(scope="module")
def predictor(model_file) -> Predictor:
    return Predictor.from_file(model_file)


def _expected(predictor, texts) -> list[dict]:
    """Each row's record as the local engine defines it: Predictor.predict's fields, or the empty-review error."""
    present = iter(predictor.predict([text for text in texts if text.strip()]))
    records = []
    for row, text in enumerate(texts, 1):
        if text.strip():
            records.append({"row": row, **next(present).to_dict(), "error": None})
        else:
            records.append(
                {"row": row, "label": None, "score": None, "tokens": 0, "unknown_tokens": 0, "truncated": False,
                 "error": "review is empty"}
            )
    return records


def _read(path) -> list[dict]:
    """An output file's rows as records, whatever its format."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path, keep_default_na=False)
        assert tuple(frame.columns) == OUTPUT_COLUMNS
        return [
            {
                "row": int(row["row"]), "label": row["label"] or None,
                "score": float(row["score"]) if row["score"] != "" else None, "tokens": int(row["tokens"]),
                "unknown_tokens": int(row["unknown_tokens"]), "truncated": bool(row["truncated"]),
                "error": row["error"] or None,
            }
            for row in frame.to_dict("records")
        ]
    table = pq.read_table(path)
    assert table.schema == output_schema()
    return table.to_pylist()


def _parquet(path, texts, row_group_size=2, **columns):
    pq.write_table(pa.table({**columns, "review": texts}), path, row_group_size=row_group_size)
    return path


def _csv(path, texts):
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(texts))
    return path


@pytest.mark.parametrize(("source", "target"), [("csv", "parquet"), ("parquet", "csv"), ("parquet", "parquet"),
                                                ("parquet", "jsonl"), ("csv", "csv")])
def test_round_trips_keep_the_rows_in_order_and_every_score(model_file, predictor, tmp_path, capsys, source, target):
    source_path = (_csv if source == "csv" else _parquet)(tmp_path / f"in.{source}", TEXTS)
    out = tmp_path / f"out.{target}"
    assert main(["predict", "--model", str(model_file), "--input", str(source_path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out) and captured.err.strip() == "1 of 6 rows had no review text (an error each)"
    got = [json.loads(line) for line in out.read_text().splitlines()] if target == "jsonl" else _read(out)
    expected = _expected(predictor, TEXTS)
    if target == "jsonl":
        # JSON lines, as --csv writes them: a scored row has no "error" key at all.
        expected = [{key: value for key, value in record.items() if key != "error" or value} for record in expected]
    # Another Predictor's session and the reader's batches: scores within float32 rounding, every other field exactly.
    assert_same_records(got, expected)
    # Written without loss: each score is still the float32 onnxruntime gave (float64 in Parquet, repr in CSV).
    assert all(float(np.float32(row["score"])) == row["score"] for row in got if row["score"] is not None)


def test_without_out_the_rows_are_json_lines_as_with_csv(model_file, predictor, tmp_path, capsys):
    source = _parquet(tmp_path / "in.pq", TEXTS)
    assert main(["predict", "--model", str(model_file), "--input", str(source)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [record["score"] for record in _expected(predictor, TEXTS)]
    assert [line.get("score") is None for line in lines] == [score is None for score in expected]
    assert_close([line["score"] for line in lines if "score" in line and line["score"] is not None],
                 [score for score in expected if score is not None])


def test_the_parquet_of_the_page_is_the_parquet_of_the_cli(model_file, predictor, tmp_path, capsys):
    source = _parquet(tmp_path / "in.parquet", TEXTS)
    out = tmp_path / "out.parquet"
    assert main(["predict", "--model", str(model_file), "--input", str(source), "--out", str(out)]) == 0
    scored = score_table(predictor, source)
    (tmp_path / "page.parquet").write_bytes(parquet_bytes(scored))
    assert pq.read_table(tmp_path / "page.parquet").equals(pq.read_table(out))
    assert scored.previews[0] == "good movie" and len(scored) == 6


def test_nulls_and_a_named_column_and_a_text_dictionary(predictor, tmp_path):
    path = tmp_path / "named.parquet"
    body = pa.array(["good", None, "bad"]).dictionary_encode()
    pq.write_table(pa.table({"Body": body, "text": pa.array([1, 2, 3])}), path)
    records = [item.to_dict() for item in predict_parquet(predictor, path, text_column="body")]
    assert [record["row"] for record in records] == [1, 2, 3]
    assert records[1]["error"] == "review is empty"
    assert [records[0]["score"], records[2]["score"]] == [item.score for item in predictor.predict(["good", "bad"])]


def test_many_row_groups_stream_in_bounded_memory(model_file, predictor, tmp_path):
    rows = 200_000
    texts = pa.array([f"review {index} was good" if index % 3 else f"boring film {index}" for index in range(rows)])
    source = tmp_path / "many.parquet"
    pq.write_table(pa.table({"text": texts}), source, row_group_size=10_000)
    assert pq.ParquetFile(source).num_row_groups == 20
    # The whole column as Python strings, which a reader that loaded the file at once would hold, and more.
    decoded = sum(len(text) + 49 for text in texts.to_pylist())
    out = tmp_path / "scores.parquet"
    pool = pa.default_memory_pool()
    tracemalloc.start()
    try:
        written = write_predictions(predict_parquet(predictor, source), out, predictor.metadata.labels, source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written.rows == rows and written.failed == 0
    print(f"peak Python memory {peak:,} bytes, Arrow {pool.max_memory():,}, the decoded column {decoded:,}")
    assert peak < decoded / 3, f"peak Python memory {peak:,} bytes, the decoded column {decoded:,}"
    # Arrow's own buffers (not seen by tracemalloc): a row group read and one being written, not the whole file.
    assert pool.max_memory() < 64 * 2**20
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(1, rows + 1))
    assert pq.ParquetFile(out).num_row_groups == 4, "written in row groups of 65,536 rows"
    # The first chunk of 4,096 rows was one predict call: the same call here gives the same scores.
    expected = predictor.predict(texts[:4096].to_pylist())
    assert table.column("score")[:4096].to_pylist() == [item.score for item in expected]


def _corrupt(path):
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\x07" * (len(data) // 2) + data[4 + len(data) // 2 :])
    return path


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-20])
    return path


@pytest.mark.parametrize(
    ("make", "out_name", "message"),
    [
        (lambda tmp: _write_table(tmp / "x.parquet", {"title": ["x"], "stars": [5]}), "out.csv",
         "no text or review column"),
        (lambda tmp: _write_table(tmp / "x.parquet", {"text": [1, 2]}), "out.csv", "holds int64, not text"),
        (lambda tmp: _corrupt(_parquet(tmp / "x.parquet", ["good"] * 500, row_group_size=100)), "out.parquet",
         "is not a readable Parquet file"),
        (lambda tmp: _truncated(_parquet(tmp / "x.parquet", ["good"] * 50)), "out.parquet",
         "is not a readable Parquet file"),
        (lambda tmp: (tmp / "x.parquet").write_bytes(b"text\ngood\n") and tmp / "x.parquet", "out.csv",
         "is not a readable Parquet file"),
        (lambda tmp: _write_table(tmp / "x.txt", {"text": ["good"]}), "out.csv", "unknown input format .txt"),
        (lambda tmp: _parquet(tmp / "x.parquet", ["good"]), "out.xlsx", "unknown output format .xlsx"),
        (lambda tmp: _parquet(tmp / "x.parquet", ["good"]), "out", "unknown output format (no extension)"),
        (lambda tmp: _write_table(tmp / "x.parquet", {"text": pa.array([], pa.string())}), "out.parquet",
         "has a header but no rows"),
        (lambda tmp: tmp / "missing.parquet", "out.csv", "no input file at"),
    ],
    ids=["no-text-column", "int-text-column", "corrupt-pages", "truncated", "csv-named-parquet", "unknown-input",
         "unknown-output", "no-extension", "no-rows", "missing"],
)
def test_bad_input_is_one_error_line_and_no_output_file(model_file, tmp_path, capsys, make, out_name, message):
    source = make(tmp_path)
    out = tmp_path / "result" / out_name
    out.parent.mkdir()
    code = main(["predict", "--model", str(model_file), "--input", str(source), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: ") and message in captured.err, captured.err
    assert not list(out.parent.iterdir()), "no output file, not even a temporary one"


def _write_table(path, columns):
    pq.write_table(pa.table(columns), path)
    return path


def test_flag_mistakes_are_one_line(model_file, tmp_path, capsys):
    source = _parquet(tmp_path / "in.parquet", ["good"])
    cases = [
        (["--input", str(source), "--csv", str(source)], "one of them"),
        (["--input", str(source), "great"], "one of them"),
        (["--input", str(tmp_path)], "is a folder"),
        (["--engine", "ray", "great"], "--engine ray scores a file or folder"),
        (["--input", str(source), "--address", "ray://x:10001"], "--address only applies with --engine ray"),
        (["--text-column", "body", "great"], "--text-column only applies"),
        (["--input", str(source), "--engine", "ray"], "--engine ray writes a Parquet file"),
        (["--input", str(source), "--engine", "ray", "--out", str(tmp_path / "x.csv")], "--engine ray writes Parquet"),
        (["--input", str(tmp_path / "none"), "--engine", "ray", "--out", str(tmp_path / "x.pq")], "no input file or"),
    ]
    for arguments, message in cases:
        assert main(["predict", "--model", str(model_file), *arguments]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, (arguments, error)


def test_rows_done_show_on_a_terminal_and_the_output_is_unchanged(model_file, tmp_path, capsys, monkeypatch):
    source = _csv(tmp_path / "in.csv", TEXTS)
    out = tmp_path / "out.jsonl"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["predict", "--model", str(model_file), "--input", str(source), "--out", str(out)]) == 0
    drawn = terminal.getvalue()
    assert "rows scored" in drawn and "100%" in drawn, drawn
    assert capsys.readouterr().out.strip() == str(out) and len(out.read_text().splitlines()) == len(TEXTS)
