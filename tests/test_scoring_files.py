"""core.scoring.files: one output record a CSV row (the CLI's and the page's), the typed table, the text-column rule."""

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from core.cli import main
from core.scoring.files import OUTPUT_COLUMNS, PREVIEW_CHARACTERS, predict_csv, score_csv
from core.scoring.predictor import Predictor
from core.data.review_csv import TEXT_COLUMNS, find_column, text_column_index
from tests.float_checks import assert_same_records
from tests.hand_built_file import build_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("csv-scoring") / "tiny.onnx"
    onnx.save(build_model(), path)
    return path


@pytest.fixture(scope="module")
def predictor(model_file) -> Predictor:
    return Predictor.from_file(model_file)


def _reviews(path: Path) -> Path:
    long_text = "great " * 100
    path.write_text(f'id,Review\n1,good movie\n2,"  "\n3,{long_text}\n4,awful boring plot\n', encoding="utf-8")
    return path


def test_a_rows_record_is_its_prediction_or_its_error(predictor, tmp_path):
    results = list(predict_csv(predictor, _reviews(tmp_path / "reviews.csv")))
    good, empty = results[0].to_dict(), results[1].to_dict()
    assert tuple(good) == OUTPUT_COLUMNS[:-1]
    # Scored in a batch of three here, alone there: other batch shapes, equal within float32 rounding.
    assert_same_records([good], [{"row": 1, **predictor.predict("good movie")[0].to_dict()}])
    assert tuple(empty) == OUTPUT_COLUMNS
    assert empty == {
        "row": 2, "label": None, "score": None, "tokens": 0, "unknown_tokens": 0, "truncated": False,
        "error": "review is empty",
    }


def test_the_table_holds_every_record_in_typed_columns(predictor, tmp_path):
    path = _reviews(tmp_path / "reviews.csv")
    seen = []
    scored = score_csv(predictor, path, progress=lambda *report: seen.append(report), preview_rows=3)
    records = [item.to_dict() for item in predict_csv(predictor, path)]
    assert len(scored) == 4 and seen[-1] == (1.0, 4)
    frame = scored.to_frame()
    assert tuple(frame.columns) == OUTPUT_COLUMNS
    for (_, row), record in zip(frame.iterrows(), records):
        for column in OUTPUT_COLUMNS:
            value = row[column]
            expected = record.get(column)
            if expected is None:
                assert value is None or (isinstance(value, float) and math.isnan(value)), (column, value)
            else:
                assert value == expected, (column, value, expected)
    assert frame["label"].isna().tolist() == [False, True, False, False]
    assert frame["error"].tolist()[1] == "review is empty" and scored.errors == ("review is empty",)
    assert scored.truncated.tolist() == [False, False, True, False] and scored.scores.dtype == np.float64
    # The previews: the first preview_rows rows' text, each cut short for a table.
    assert len(scored.previews) == 3 and scored.previews[0] == "good movie"
    assert len(scored.previews[2]) == PREVIEW_CHARACTERS


def test_the_cli_writes_the_same_records(model_file, predictor, tmp_path, capsys):
    path = _reviews(tmp_path / "reviews.csv")
    assert main(["predict", "--model", str(model_file), "--csv", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [item.to_dict() for item in predict_csv(predictor, path)]


def test_an_empty_table_is_a_table(predictor, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n", encoding="utf-8")
    scored = score_csv(predictor, path)
    assert len(scored) == 0 and scored.to_frame().empty and tuple(scored.to_frame().columns) == OUTPUT_COLUMNS


def test_one_text_column_rule_for_training_and_scoring(predictor, tmp_path):
    assert TEXT_COLUMNS == ("text", "review")
    assert text_column_index(["id", " Review ", "text"]) == 2, "text comes before review"
    assert text_column_index(["id", " Review "]) == 1, "case and surrounding spaces do not matter"
    assert text_column_index(["id", "body"]) is None
    assert text_column_index(["Body", "body"], "body") == 1, "the exact name first"
    assert text_column_index(["id", "BODY"], "body") == 1
    assert find_column(["sentiment", "x"], ("label", "sentiment")) == 0
    # Scoring follows it: a column named with other capitals is found by name.
    path = tmp_path / "named.csv"
    path.write_text("title,Body\nfirst,good movie\n", encoding="utf-8")
    assert [item.prediction.tokens for item in predict_csv(predictor, path, text_column="body")] == [2]


def test_the_summary_counts_rows_by_label_and_the_empty_ones(predictor, tmp_path):
    scored = score_csv(predictor, _reviews(tmp_path / "reviews.csv"))
    labels = [label for label in scored.to_frame()["label"] if isinstance(label, str)]
    negative, positive = labels.count("negative"), labels.count("positive")
    assert scored.summary() == f"{negative} negative, {positive} positive, 1 empty"
    full = tmp_path / "full.csv"
    full.write_text("text\ngood\n", encoding="utf-8")
    assert score_csv(predictor, full).summary() in ("1 negative, 0 positive", "0 negative, 1 positive")


def test_max_rows_scores_only_the_first_rows_and_says_more_were_left(predictor, tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("text\n" + "".join(f"review number {index}\n" for index in range(25)), encoding="utf-8")
    capped = score_csv(predictor, path, max_rows=10)
    assert len(capped) == 10 and capped.capped and list(capped.rows) == list(range(1, 11))
    exact = score_csv(predictor, path, max_rows=25)
    assert len(exact) == 25 and not exact.capped
    assert not score_csv(predictor, path).capped
    with pytest.raises(ValueError, match="max_rows"):
        score_csv(predictor, path, max_rows=0)


def test_a_csv_and_the_same_rows_in_parquet_give_one_table(predictor, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.scoring.table_io import score_table

    path = _reviews(tmp_path / "reviews.csv")
    texts = [item.text for item in predict_csv(predictor, path)]
    pq.write_table(pa.table({"Review": texts}), tmp_path / "reviews.parquet")
    from_csv, from_parquet = score_csv(predictor, path), score_table(predictor, tmp_path / "reviews.parquet")
    assert score_table(predictor, path).to_frame().equals(from_csv.to_frame()), "a .csv goes the CSV way"
    assert from_parquet.to_frame().equals(from_csv.to_frame()) and from_parquet.previews == from_csv.previews
    capped = score_table(predictor, tmp_path / "reviews.parquet", max_rows=2)
    assert len(capped) == 2 and capped.capped
    with pytest.raises(ValueError, match="max_rows"):
        score_table(predictor, path, max_rows=0)
