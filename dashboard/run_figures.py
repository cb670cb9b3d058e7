"""Plotly figures of training histories: one run's curves, several runs overlaid; the pages only place them."""

from __future__ import annotations

import plotly.colors
import plotly.graph_objects as go

from core.history import BEST_EPOCH_LABEL, best_epoch

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend": {"orientation": "h", "y": -0.25}}


def history_figure(history: dict, metric: str, title: str, height: int = 320) -> go.Figure:
    """The seed's figure in plotly: training as dots, validation as a line, over epochs; the best epoch marked."""
    figure = go.Figure()
    training = history.get(metric) or []
    validation = history.get(f"val_{metric}") or []
    figure.add_trace(
        go.Scatter(x=list(range(1, len(training) + 1)), y=training, mode="markers", name=f"Training {metric}")
    )
    if validation:
        figure.add_trace(
            go.Scatter(
                x=list(range(1, len(validation) + 1)), y=validation, mode="lines+markers", name=f"Validation {metric}"
            )
        )
    epochs = max(len(training), len(validation), 1)
    best = best_epoch(history)
    if best is not None:
        # The label reads away from the edge it is nearest: from the right half of the chart it runs leftwards.
        side = "top left" if best.epoch >= (epochs + 1) / 2 else "top right"
        figure.add_vline(
            x=best.epoch,
            line_dash="dot",
            line_color="gray",
            annotation_text=f"{BEST_EPOCH_LABEL}: {best.epoch}",
            annotation_position=side,
        )
    figure.update_layout(title=title, xaxis_title="Epochs", yaxis_title=metric.capitalize(), height=height, **_LAYOUT)
    # The epochs run, and no more: the label's text stretched the automatic range to 13 epochs out of 3.
    figure.update_xaxes(range=[0.5, epochs + 0.5], dtick=1 if epochs <= 20 else None)
    # Loss and accuracy are never negative; without this a single epoch's point is padded into negative values.
    figure.update_yaxes(rangemode="nonnegative")
    return figure


def runs_overlay(histories: dict[str, dict], metric: str, title: str) -> go.Figure:
    """One curve (metric) a run, by run id, over epochs: the Runs page's overlay."""
    figure = go.Figure()
    for run_id, history in histories.items():
        values = history.get(metric) or []
        figure.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", name=run_id))
    figure.update_layout(
        xaxis_title="Epochs",
        yaxis_title=title,
        height=360,
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        legend=_LAYOUT["legend"],
    )
    # Epochs done: the length of the training loss, as RunInfo.epochs_done counts them.
    epochs = max((len(history.get("loss", [])) for history in histories.values()), default=0)
    figure.update_xaxes(dtick=1 if epochs <= 20 else None)
    return figure


def comparison_overlay(rows, metric: str, axis_title: str) -> go.Figure:
    """Every compared run in its own colour: validation as a solid line, training as a dotted one."""
    figure = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    for index, row in enumerate(rows):
        colour = palette[index % len(palette)]
        label = f"{row.name} ({row.run_id[-6:]})"
        for key, dash, kind in ((f"val_{metric}", "solid", "validation"), (metric, "dot", "training")):
            values = row.history.get(key) or []
            figure.add_trace(
                go.Scatter(
                    x=list(range(1, len(values) + 1)),
                    y=values,
                    mode="lines+markers",
                    name=f"{label} {kind}",
                    line={"color": colour, "dash": dash},
                )
            )
    figure.update_layout(
        title=f"Training and validation {metric}", xaxis_title="Epochs", yaxis_title=axis_title, height=380, **_LAYOUT
    )
    figure.update_xaxes(dtick=1 if max((row.epochs_run for row in rows), default=0) <= 20 else None)
    figure.update_yaxes(rangemode="nonnegative")
    return figure
