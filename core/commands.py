"""One function per CLI command: takes the parsed arguments, calls into core, prints, returns the exit status."""

from __future__ import annotations

import argparse
import json

from core.config import ExperimentConfig, preset


def experiment_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The config a command's --preset or --config names; the seed when neither is given."""
    if getattr(args, "config", None):
        return ExperimentConfig.from_file(args.config)
    return preset(args.preset or "seed")


def summary(args: argparse.Namespace) -> int:
    from core.model import describe

    description = describe(experiment_from_args(args).model)
    if args.json:
        print(json.dumps(description.to_dict()))
        return 0
    rows = [("Layer (type)", "Output shape", "Params", "Formula")]
    rows += [
        (f"{layer.name} ({layer.type})", str(layer.output_shape), f"{layer.params:,}", layer.formula)
        for layer in description.layers
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"Total params: {description.total_params:,} ({description.size_bytes / 1024:,.1f} KiB as float32)")
    return 0


def train(args: argparse.Namespace) -> int:
    raise NotImplementedError("train: owned by the training helper")


def evaluate(args: argparse.Namespace) -> int:
    raise NotImplementedError("evaluate: run folders by the training helper, --model by the export helper")


def runs(args: argparse.Namespace) -> int:
    raise NotImplementedError("runs: owned by the training helper")


def export(args: argparse.Namespace) -> int:
    raise NotImplementedError("export: owned by the export helper")


def predict(args: argparse.Namespace) -> int:
    raise NotImplementedError("predict: owned by the export helper")


def bench(args: argparse.Namespace) -> int:
    raise NotImplementedError("bench: owned by the export helper")
