"""AppTest checks of the Build, Data, Train and Runs pages: each renders, shows the right numbers and explains bad input."""

import json
from pathlib import Path

import pytest

from streamlit.testing.v1 import AppTest

from tests.browser_support import open_page

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMDB_RUNS", str(tmp_path / "runs"))


def _metric(app: AppTest, label: str) -> str:
    return next(metric.value for metric in app.metric if metric.label == label)


@pytest.mark.parametrize(
    ("preset", "total"), [("seed-rnn", "322,080"), ("seed-stacked", "328,320"), ("seed", "322,113")]
)
def test_build_shows_the_seed_parameter_counts(preset, total):
    app = open_page("build")
    app.selectbox(key="build_preset").set_value(preset).run()
    assert not app.exception
    assert _metric(app, "Total parameters") == total
    table = app.table[0].value
    assert f"{sum(int(cell.replace(',', '')) for cell in table['Parameters']):,}" == total


def test_build_explains_a_bad_value_next_to_the_field_and_keeps_working():
    app = open_page("build")
    app.number_input(key="build_layer_0_units").set_value(0).run()
    assert not app.exception
    assert [error.value for error in app.error] == ["Layer 1: units must be between 1 and 4,096, got 0"]
    assert not app.metric, "no summary while a field is wrong"
    app.number_input(key="build_layer_0_units").set_value(16).run()
    assert not app.error
    assert _metric(app, "Total parameters") == f"{320_000 + 16 * (32 + 16 + 1) + 17:,}"


@pytest.mark.parametrize("preset", ["seed", "book-lstm", "seed-stacked"])
def test_build_says_when_the_form_no_longer_holds_the_preset(preset):
    from core.config import PRESET_DESCRIPTIONS

    app = open_page("build")
    app.selectbox(key="build_preset").set_value(preset).run()
    assert PRESET_DESCRIPTIONS[preset] in [caption.value for caption in app.caption]
    app.number_input(key="build_layer_0_units").set_value(17).run()
    notes = [caption.value for caption in app.caption]
    assert any(note.startswith(f"Edited from {preset}: ") for note in notes)
    assert PRESET_DESCRIPTIONS[preset] not in notes
    app.button(key="build_reset").click().run()
    assert PRESET_DESCRIPTIONS[preset] in [caption.value for caption in app.caption]


def test_build_adds_and_removes_layers_and_keeps_the_config_for_train():
    app = open_page("build")
    app.button(key="build_add_layer").click().run()
    assert _metric(app, "Total parameters") == f"{322_113 + 32 * (32 + 32 + 1):,}"
    assert len(app.session_state["experiment_config"].model.recurrent_layers) == 2
    app.button(key="build_layer_0_remove").click().run()
    assert _metric(app, "Total parameters") == "322,113"
    app.number_input(key="build_vocabulary_size").set_value(5).run()
    assert "model.vocabulary_size must be between 10 and 200,000, got 5" in [error.value for error in app.error]
    # The last valid config is what Train would use.
    assert app.session_state["experiment_config"].model.vocabulary_size == 10_000


def _write_tiny_csv(path: Path, reviews: int = 240) -> Path:
    """Made-up reviews whose label shows in a few words, so a tiny model learns something in one epoch."""
    import csv
    import random

    generator = random.Random(7)
    good, bad = "great wonderful superb loved".split(), "awful boring terrible waste".split()
    filler = "the movie film was a and it this plot acting story of".split()
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for index in range(reviews):
            label = index % 2
            words = [generator.choice(filler) for _ in range(generator.randint(5, 40))]
            words += [generator.choice(good if label else bad) for _ in range(3)]
            generator.shuffle(words)
            writer.writerow([" ".join(words) + " <script>alert(1)</script>", label])
    return path


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    return _write_tiny_csv(tmp_path_factory.mktemp("data") / "tiny.csv")


def test_data_shows_counts_lengths_and_a_review_for_a_tiny_source(tiny_csv, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(tiny_csv))
    app = open_page("data")
    counts = app.dataframe[0].value.set_index("Split")
    assert counts.loc["train", "Total"] + counts.loc["test", "Total"] == 240
    assert counts.loc["test", "Total"] == 48, "a CSV without a split column holds out 20%"
    assert counts.loc["train", "negative"] + counts.loc["train", "positive"] == counts.loc["train", "Total"]
    assert _metric(app, "Reviews cut") == "0.0%"
    # The raw text is shown as text, tags and all, never as HTML.
    assert "<script>alert(1)</script>" in app.code[0].value
    seen = app.markdown[-1].value
    assert seen.startswith(":blue[\\<start\\>]") and "script" in seen and "<script>" not in seen
    app.number_input(key="data_review_index").set_value(5).run()
    assert not app.exception


def test_data_explains_a_missing_source_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(tmp_path / "nowhere.tar.gz"))
    app = open_page("data")
    assert len(app.error) == 1
    assert "does not exist" in app.error[0].value and "\n" not in app.error[0].value
    assert not app.dataframe


def _tiny_experiment():
    from core.config import ExperimentConfig, ModelConfig, RecurrentLayerConfig, TrainConfig

    return ExperimentConfig(
        ModelConfig(vocabulary_size=100, sequence_length=40, embedding_dim=8, recurrent_layers=(RecurrentLayerConfig(units=8),)),
        TrainConfig(batch_size=32, epochs=2),
    )


def _open_train(tiny_csv, monkeypatch) -> AppTest:
    monkeypatch.setenv("IMDB_DATA", str(tiny_csv))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.session_state["experiment_config"] = _tiny_experiment()
    app.switch_page("views/train.py").run()
    assert not app.exception, app.exception
    return app


def _run_until(app: AppTest, done, seconds: float = 120.0) -> None:
    """AppTest does not tick run_every: rerun the page until done(app), as the browser's refresh would."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.run()
        assert not app.exception, app.exception
        if done(app):
            return
        time.sleep(0.3)
    pytest.fail(f"the page did not reach the expected state in {seconds:.0f} s")


@pytest.mark.slow
def test_stop_ends_the_training_and_keeps_the_run(tiny_csv, monkeypatch):
    app = _open_train(tiny_csv, monkeypatch)
    app.number_input(key="train_epochs").set_value(200).run()
    app.button(key="train_start").click().run()
    _run_until(app, lambda page: bool(page.get("plotly_chart")))
    app.button(key="train_stop").click().run()
    _run_until(app, lambda page: bool(page.warning or page.success or page.error))
    assert app.warning[0].value.startswith("Stopped after "), [element.value for element in app.warning]
    app.switch_page("views/runs.py").run()
    assert list(app.dataframe[0].value["Status"]) == ["cancelled"]
    # Delete it, behind the confirmation.
    assert app.button(key="runs_delete").disabled
    app.checkbox(key="runs_delete_confirm").check().run()
    app.button(key="runs_delete").click().run()
    assert not app.exception
    assert app.success[0].value.startswith("Deleted run ")
    assert app.info[0].value.startswith("No runs yet")


def test_runs_lists_a_broken_run_with_its_reason(tmp_path):
    import json

    from core.config import PRESETS

    run = tmp_path / "runs" / "20260101-000000-seed-abcdef"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(PRESETS["seed"].to_dict()))
    (run / "run.json").write_text(json.dumps({"status": "finished", "created": "2026-01-01T00:00:00+00:00"}))
    (run / "history.json").write_text('{"loss": [0.6, 0.')
    app = open_page("runs")
    table = app.dataframe[0].value
    assert list(table["Run"]) == [run.name]
    assert "history.json is missing or corrupt" in table["Problem"][0]
    assert any("This run is broken" in warning.value for warning in app.warning)


def _made_run(root: Path, name: str, status: str, epochs: int, model: bytes | None = None) -> Path:
    """A run folder written by core's store, then changed into what a crash or a bad disk leaves behind."""
    import json

    from core.runs.store import RunStore, write_history
    from core.data.text import Vocabulary

    experiment = _tiny_experiment()
    store = RunStore(root)
    path = store.create(experiment, Vocabulary.build([["great", "awful"]], 100), {"source": "test", "reviews": 10})
    history = {key: [0.5 + index / 100 for index in range(epochs)] for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
    write_history(path, history)
    record = json.loads((path / "run.json").read_text())
    # A pid no process has: the store reads a "running" run whose process is gone as interrupted.
    record.update(status=status, pid=2**22 + 1, finished=None if status == "running" else record["created"])
    (path / "run.json").write_text(json.dumps(record))
    if model is not None:
        (path / "model.keras").write_bytes(model)
    return path.rename(path.with_name(name))


def test_interrupted_and_broken_runs_are_shown_sensibly_and_refused_politely(tmp_path):
    runs = tmp_path / "runs"
    interrupted = _made_run(runs, "20260101-000003-seed-interr", "running", epochs=2)
    truncated = _made_run(runs, "20260101-000002-seed-trunck", "finished", epochs=2, model=b"PK\x03\x04 cut short")
    corrupt = _made_run(runs, "20260101-000001-seed-badhis", "cancelled", epochs=1, model=b"")
    (corrupt / "history.json").write_text('{"loss": [0.6, 0.')

    app = open_page("runs")
    table = app.dataframe[0].value.set_index("Run")
    assert table.loc[interrupted.name, "Status"] == "interrupted"
    assert table.loc[interrupted.name, "Epochs"] == "2/2"
    assert table.loc[truncated.name, "Status"] == "finished, broken"
    assert "model.keras is truncated or corrupt" in table.loc[truncated.name, "Problem"]
    assert table.loc[corrupt.name, "Status"] == "cancelled, broken"
    # The newest run, the interrupted one, is shown in detail: a note with its kept epochs, not a failure.
    assert not app.error, [error.value for error in app.error]
    assert any("was interrupted" in info.value and "2 of 2 epochs" in info.value for info in app.info)
    assert len(app.get("plotly_chart")) >= 2, "its curves are drawn"

    for page, action in (("export", "export"), ("inside", "look inside")):
        app = open_page(page)
        for run, reason in (
            (interrupted, "without saving its weights"),
            (truncated, "model.keras is truncated or corrupt"),
            (corrupt, "history.json is missing or corrupt"),
        ):
            app.selectbox(key=f"{page}_run").set_value(run.name).run()
            assert not app.exception, app.exception
            assert not app.error, [error.value for error in app.error]
            warnings = [warning.value.replace("\\", "") for warning in app.warning]
            assert len(warnings) == 1 and reason in warnings[0] and action in warnings[0], warnings
            assert not app.get("plotly_chart") and not app.get("download_button")


def test_offline_keras_download_is_one_message_and_the_other_pages_work(monkeypatch):
    from core.data import load as data

    calls = []

    def offline(num_words, report):
        calls.append(num_words)
        raise data.DataError(data.KERAS_OFFLINE_MESSAGE)

    monkeypatch.delenv("IMDB_DATA", raising=False)
    monkeypatch.setattr(data, "_load_keras", offline)
    app = open_page("data")
    assert len(app.error) == 1 and app.error[0].value.startswith("Cannot download Keras")
    assert app.get("file_uploader"), "a CSV can still be uploaded here"
    app.switch_page("views/train.py").run()
    assert not app.exception
    assert len(app.error) == 1 and "imdb\\.npz" in app.error[0].value
    assert not app.button, "no Start button without reviews"
    assert len(calls) == 1, "a failed download is not tried again on every page"
    for page in ("build", "runs"):
        app.switch_page(f"views/{page}.py").run()
        assert not app.exception and not app.error, page


def test_every_widget_has_a_key_and_pages_hold_no_bare_strings():
    import ast

    widgets = {
        "button", "checkbox", "toggle", "radio", "selectbox", "multiselect", "slider", "select_slider", "text_input",
        "text_area", "number_input", "date_input", "time_input", "file_uploader", "download_button", "pills",
        "segmented_control", "color_picker", "data_editor", "chat_input", "feedback", "camera_input", "audio_input",
    }
    dashboard = Path(APP).parent
    for path in sorted(dashboard.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in widgets:
                keys = [keyword.arg for keyword in node.keywords]
                assert "key" in keys, f"{path.name}:{node.lineno}: st.{node.func.attr} without a key"
        # A string statement that is not a docstring would be drawn on the page by Streamlit's magic.
        functions = [node.body for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        blocks = [tree.body, *functions, *(node.body for node in ast.walk(tree) if isinstance(node, (ast.If, ast.With, ast.For)))]
        for body in blocks:
            for index, statement in enumerate(body):
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                    docstring = index == 0 and any(body is other for other in [tree.body, *functions])
                    assert docstring, f"{path.name}:{statement.lineno}: a bare literal in a page body"


def test_train_says_when_the_latest_run_was_interrupted(tiny_csv, tmp_path, monkeypatch):
    from dashboard import resources

    interrupted = _made_run(tmp_path / "runs", "20260101-000003-seed-interr", "running", epochs=1)
    # A fresh server: the training slot is shared by the whole process, so other tests' trainings are forgotten.
    resources.training_slot.clear()
    app = _open_train(tiny_csv, monkeypatch)
    assert any("was interrupted" in warning.value and interrupted.name in warning.value.replace("\\", "") for warning in app.warning)
    assert app.info[0].value.startswith("No training yet on this server")
    assert not app.error


def test_start_training_is_off_while_a_training_runs_and_read_only_invites_no_start(tiny_csv, tmp_path, monkeypatch):
    from core.data.text import Vocabulary
    from core.runs.store import RunStore
    from dashboard import access, resources

    resources.training_slot.clear()
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "1")
    app = _open_train(tiny_csv, monkeypatch)
    assert app.button(key="train_start").disabled
    notes = [info.value for info in app.info]
    assert "No training yet on this server." in notes and not any("Press Start" in note for note in notes)
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "0")
    app = _open_train(tiny_csv, monkeypatch)
    assert not app.button(key="train_start").disabled
    assert "No training yet on this server. Press Start training." in [info.value for info in app.info]
    # A run this process holds open reads as running: any tab, any process.
    vocabulary = Vocabulary.build([["great", "awful"]], 100)
    RunStore(tmp_path / "runs").create(_tiny_experiment(), vocabulary, {"source": "test", "reviews": 10})
    app = _open_train(tiny_csv, monkeypatch)
    start = app.button(key="train_start")
    assert start.disabled and "One training at a time" in start.help
    assert any("A training is running" in caption.value for caption in app.caption)


def test_a_bad_csv_upload_on_data_stays_explained_and_the_page_keeps_working(tiny_csv, monkeypatch):
    monkeypatch.setenv("IMDB_DATA", str(tiny_csv))
    app = open_page("data")
    app.file_uploader(key="data_upload").set_value(("mine [x](y).csv", b"title,stars\nnice,5\n", "text/csv")).run()
    assert not app.exception
    for _ in range(2):
        errors = [error.value for error in app.error]
        assert len(errors) == 1 and "not put in use" in errors[0] and "mine \\[x\\]\\(y\\)\\.csv" in errors[0], errors
        assert "uploads" not in errors[0], "the server-side path of the upload is not shown"
        assert app.dataframe, "the reviews in use are still shown"
        app.number_input(key="data_review_index").set_value(3).run()


@pytest.mark.slow
def test_a_training_runs_is_killed_shows_interrupted_resumes_to_finished_and_lists(tiny_csv, monkeypatch):
    import os
    import signal
    import time

    from dashboard import resources

    epochs = 60  # enough that the kill comes first: it lands an epoch or two after the first chart
    resources.training_slot.clear()
    app = _open_train(tiny_csv, monkeypatch)
    assert app.button(key="train_start").label == "Start training"
    app.number_input(key="train_epochs").set_value(epochs).run()
    app.button(key="train_start").click().run()
    assert not app.error, [error.value for error in app.error]
    # A second tab sees the same training and cannot start a second one.
    other = _open_train(tiny_csv, monkeypatch)
    assert other.button(key="train_start").disabled
    _run_until(app, lambda page: bool(page.get("plotly_chart")))  # an epoch has ended, so a checkpoint exists
    os.kill(resources.training_slot().launch.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    _run_until(app, lambda page: any("was interrupted" in warning.value for warning in page.warning), seconds=10)
    assert time.monotonic() - killed_at < 10
    resume_label = app.button(key="train_resume").label
    assert resume_label.startswith("Resume from epoch ")
    print(f"\nkilled, then offered: {resume_label} (of {epochs})")

    # The rest of the dashboard goes on working, and Runs offers Resume too.
    app.switch_page("views/runs.py").run()
    assert not app.exception
    assert list(app.dataframe[0].value["Status"]) == ["interrupted"]
    assert any("partial: " in caption.value for caption in app.caption)
    app.button(key="runs_resume").click().run()
    assert not app.exception and app.success[0].value.startswith("Resumed run ")
    app.switch_page("views/train.py").run()
    _run_until(app, lambda page: bool(page.success or page.error), seconds=180)
    assert not app.error and app.success[0].value.startswith("Finished run ")
    assert len(app.get("plotly_chart")) == 2, "loss and accuracy curves"

    app.switch_page("views/runs.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["Status"]) == ["finished"] and table["Epochs"][0] == f"{epochs}/{epochs}"
    assert table["Architecture"][0] == "Embedding(100, 8) > SimpleRNN(8) > Dense(1)"
    assert 1 < table["Test accuracy"][0] <= 100, "in percent"
    assert "Problem" not in table.columns, "no empty column when no run has a problem"
    assert json.loads(app.dataframe[0].proto.columns)["Test accuracy"]["type_config"]["format"] == "%.1f%%"
    titles = [chart.proto.spec for chart in app.get("plotly_chart")]
    assert any("Training and validation accuracy" in spec for spec in titles)
    assert any("Training and validation loss" in spec for spec in titles)


def test_read_only_mode_disables_start_and_delete_and_says_why(tiny_csv, tmp_path, monkeypatch):
    from dashboard import access, resources

    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "1")
    resources.training_slot.clear()
    _made_run(tmp_path / "runs", "20260101-000004-seed-stop", "cancelled", epochs=1)
    app = _open_train(tiny_csv, monkeypatch)
    assert any(info.value.startswith("Read-only mode") for info in app.info)
    assert app.button(key="train_start").disabled
    app.switch_page("views/runs.py").run()
    assert any(info.value.startswith("Read-only mode") for info in app.info)
    app.checkbox(key="runs_delete_confirm").check().run()
    assert app.button(key="runs_delete").disabled


def test_resume_is_offered_for_an_interrupted_run_and_refused_in_one_line_while_another_trains(tiny_csv, tmp_path,
                                                                                               monkeypatch):
    from core.runs.store import RunStore
    from dashboard import resources

    interrupted = _made_run(tmp_path / "runs", "20260101-000005-seed-killed", "running", epochs=1)  # of 2
    (interrupted / "checkpoint").mkdir()
    (interrupted / "checkpoint" / "epoch-0001.weights.h5").write_bytes(b"state")
    resources.training_slot.clear()
    app = _open_train(tiny_csv, monkeypatch)
    assert app.button(key="train_resume_latest").label == "Resume from epoch 1"
    with RunStore(tmp_path / "runs").training_lock():  # another process trains into this runs folder
        app.button(key="train_resume_latest").click().run()
    assert not app.exception and resources.training_slot().launch is None
    assert len(app.error) == 1 and "another training is running" in app.error[0].value.lower()
    app.switch_page("views/runs.py").run()
    assert app.button(key="runs_resume").label == "Resume from epoch 1"


def test_a_read_only_visitor_cannot_make_the_server_encode_the_reviews_with_another_vocabulary(tiny_csv, tmp_path,
                                                                                              monkeypatch):
    from dashboard import access

    monkeypatch.setenv("IMDB_DATA", str(tiny_csv))
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "1")
    app = open_page("build")
    app.number_input(key="build_vocabulary_size").set_value(500).run()
    app.switch_page("views/data.py").run()
    assert not app.exception, app.exception
    assert any(info.value.startswith("Read-only mode reads the reviews with the vocabulary of 10,000 words every "
                                     "preset uses, not the Build page's 500") for info in app.info)
    written = sorted(path.name for path in (tmp_path / "cache").rglob("*") if path.is_file())
    assert len(written) == 1, written  # the default vocabulary's, which every visitor shares
    app.switch_page("views/train.py").run()
    assert not app.exception and sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == written
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "0")  # a session that may write gets its own vocabulary
    app.switch_page("views/data.py").run()
    assert not any(info.value.startswith("Read-only mode reads") for info in app.info)
    assert len([p for p in (tmp_path / "cache").rglob("*") if p.is_file()]) == 2
