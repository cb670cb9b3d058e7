"""Configs (core/config.py): what training a config needs is bounded, and hostile JSON is one line, never a crash."""

import json

import pytest

from core.cli import main
from core.config import (
    MAX_TRAINING_BYTES,
    PRESETS,
    ExperimentConfig,
    ModelConfig,
    RecurrentLayerConfig,
    TrainConfig,
    preset,
    training_memory_bytes,
)
from core.model.build import describe

HUGE = {
    "model": {
        "vocabulary_size": 200_000,
        "embedding_dim": 4_096,
        "recurrent_layers": [{"cell": "lstm", "units": 4_096}] * 8,
    }
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_fits_the_limit_and_counts_its_parameters_as_the_summary_does(name):
    config = preset(name)
    assert config.model.parameters == describe(config.model).total_params
    assert training_memory_bytes(config.model, config.train.batch_size) < MAX_TRAINING_BYTES / 50


def test_a_config_of_two_billion_parameters_is_refused_with_its_estimate():
    with pytest.raises(ValueError) as refused:
        ExperimentConfig.from_json(json.dumps(HUGE))
    message = str(refused.value)
    assert message.startswith("this model needs about 28.2 GiB to train (1,893,076,993 parameters, its weights alone)")
    assert "8 GiB" in message and "\n" not in message


def test_batches_count_in_the_estimate():
    model = ModelConfig(recurrent_layers=(RecurrentLayerConfig("lstm", 1_024),), sequence_length=2_000)
    ExperimentConfig(model, TrainConfig(batch_size=32))
    with pytest.raises(ValueError, match=r"GiB to train \(.* parameters, batches of 4,096\)"):
        ExperimentConfig(model, TrainConfig(batch_size=4_096))
    assert training_memory_bytes(model, 4_096) > training_memory_bytes(model, 32) > training_memory_bytes(model, 0)


def test_json_nested_past_the_parser_is_one_line(tmp_path, capsys):
    nested = "[" * 200_000 + "]" * 200_000
    with pytest.raises(ValueError, match="is nested too deeply to be a config"):
        ExperimentConfig.from_json(nested)
    path = tmp_path / "nested.json"
    path.write_text(nested)
    assert main(["summary", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "nested too deeply" in error and len(error.strip().splitlines()) == 1
    path.write_text(json.dumps(HUGE))
    assert main(["summary", "--config", str(path)]) == 2
    assert "GiB to train" in capsys.readouterr().err
