"""The plotly figures of the Classify, Evaluate, Inside-the-RNN and Memory pages: each takes plain values, returns a
figure."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from core.evaluation import EvaluationCurves, ThresholdMetrics

# Red down, green up, as the coloured words under the chart. Spelled out: Streamlit's chart theme replaces a colour
# scale given by name, and the figure is not validated (which would have spelled it out).
CHANGE_COLOURS = plotly.colors.get_colorscale("RdYlGn")


def trajectory_figure(
    words: Sequence[str], steps: Sequence[float], changes: Sequence[float], threshold: float
) -> go.Figure:
    """The positive probability after every word, a line, over a strip of one cell a word coloured by how much that
    word moved it (hover either for the word).

    Cheap for the visitor's browser: the strip is a heatmap, one image whatever the review's length, where a coloured
    marker a word was 500 SVG paths for plotly to style and place, and the margins are fixed, where margins grown to
    fit the colour bar drew every update twice (the chart was ~215 ms of a Chromium page's CPU a click, now ~75).
    Cheap for the server: arrays and plain dictionaries, not validated (tests/test_figures.py validates what this
    builds), the threshold a plain shape; plotly's validation and its copies of [word, change] pairs were most of the
    figure's cost a click (7 ms for 500 words, now 2.6, Streamlit's to_dict and JSON included)."""
    positions = np.arange(1, len(words) + 1)
    moved = np.asarray(changes, dtype=float)
    # The words as one NumPy string array (each copy of the figure's dictionary copies it at once, where a list or an
    # object array is copied word by word), the changes as numbers (sent base64-encoded).
    labels = np.asarray(words, dtype=str)
    layout = {
        "height": 340,
        # Margins fixed to fit the axis titles, the tick labels and the colour bar: margins plotly grows to fit them
        # cost a second layout pass at every redraw.
        "margin": {"l": 70, "r": 100, "t": 30, "b": 50, "autoexpand": False},
        # The line's x axis is drawn under the strip, which shares it.
        "xaxis": {"title": {"text": "after word"}, "anchor": "y2"},
        "yaxis": {
            "title": {"text": "positive probability"}, "range": [0, 1], "tickformat": ".0%", "domain": [0.17, 1.0],
        },
        "yaxis2": {"domain": [0.0, 0.11], "showticklabels": False, "ticks": "", "showgrid": False, "fixedrange": True},
        "shapes": [{
            "type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": threshold, "y1": threshold,
            "line": {"dash": "dot", "color": "#6b7280"},
        }],
        "annotations": [{
            "text": "threshold", "showarrow": False, "xref": "x domain", "x": 1, "xanchor": "right",
            "yref": "y", "y": threshold, "yanchor": "bottom",
        }],
    }
    if len(words) <= 30:
        layout["xaxis"].update(tickvals=positions, ticktext=list(words), tickangle=-45)
        layout["margin"]["b"] = 110  # room for the slanted words
    # Words are letters, digits and apostrophes only (the tokenizer drops everything else): safe as hover text.
    traces = [{
        "type": "scatter",
        "x": positions,
        "y": np.asarray(steps, dtype=float),
        # A dot a word where the words are the axis's labels; a long review's line alone.
        "mode": "lines+markers" if len(words) <= 30 else "lines",
        "line": {"color": "#4b5563", "width": 1.5},
        "marker": {"size": 6},
        "text": labels,
        "customdata": moved,
        "hovertemplate": "word %{x}: <b>%{text}</b><br>positive %{y:.1%} (%{customdata:+.1%})<extra></extra>",
        "showlegend": False,
    }]
    if len(words):
        traces.append({
            "type": "heatmap",
            "x": positions,
            "y": [0],
            "z": moved[np.newaxis, :],
            "yaxis": "y2",
            "colorscale": CHANGE_COLOURS,
            "zmid": 0.0,
            "colorbar": {"title": {"text": "change"}, "tickformat": "+.0%", "len": 1.0, "y": 0.5},
            "text": labels[np.newaxis, :],
            "hovertemplate": "word %{x}: <b>%{text}</b><br>change %{z:+.1%}<extra></extra>",
        })
    return go.Figure(traces, layout=layout, _validate=False)


def confusion_figure(metrics: ThresholdMetrics, labels: tuple[str, str]) -> go.Figure:
    """The confusion matrix of metrics (a ThresholdMetrics): actual labels down, predicted across."""
    counts = [[metrics.tn, metrics.fp], [metrics.fn, metrics.tp]]
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=list(labels),
            y=list(labels),
            text=[[f"{value:,}" for value in row] for row in counts],
            texttemplate="%{text}",
            textfont={"size": 18},
            colorscale="Blues",
            showscale=False,
            hovertemplate="actually %{y}, predicted %{x}: %{text}<extra></extra>",
        )
    )
    figure.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 64, "b": 10},
        title="Confusion matrix",
        xaxis={"title": "predicted"},  # labels turn only when they would overlap
        yaxis={"title": "actual", "autorange": "reversed"},
    )
    return figure


def _curve_figure(x, y, point, title: str, x_title: str, y_title: str, diagonal: bool) -> go.Figure:
    """A curve (ROC or precision-recall) with the point of the chosen threshold marked; diagonal adds chance."""
    figure = go.Figure(go.Scatter(x=x, y=y, mode="lines", name=title, line={"color": "#2563eb"}))
    if diagonal:
        figure.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#9ca3af"})
        )
    figure.add_trace(
        go.Scatter(
            x=[point[0]], y=[point[1]], mode="markers", name="this threshold", marker={"size": 12, "color": "#dc2626"}
        )
    )
    figure.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 64, "b": 10},  # a title of two lines: a third of a 1,024 px window is narrow
        title=title,
        xaxis={"title": x_title, "range": [0, 1]},
        yaxis={"title": y_title, "range": [0, 1.02]},
        showlegend=False,
    )
    return figure


def _area(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def roc_figure(curves: EvaluationCurves, at: ThresholdMetrics) -> go.Figure:
    """The ROC curve with its area in the title, the threshold's point marked, chance as the diagonal."""
    return _curve_figure(
        curves.false_positive_rate, curves.true_positive_rate, (at.false_positive_rate, at.recall),
        f"ROC curve<br>AUC {_area(curves.roc_auc)}", "false-positive rate", "true-positive rate (recall)",
        diagonal=True,
    )


def precision_recall_figure(curves: EvaluationCurves, at: ThresholdMetrics) -> go.Figure:
    """The precision-recall curve with its average precision in the title, the threshold's point marked."""
    return _curve_figure(
        curves.recall, curves.precision, (at.recall, at.precision),
        f"Precision-recall<br>AP {_area(curves.average_precision)}", "recall", "precision", diagonal=False,
    )


def state_figure(state: np.ndarray) -> go.Figure:
    """One state vector as bars, a unit each, coloured from -1 (red) to 1 (blue)."""
    figure = go.Figure(
        go.Bar(
            x=list(range(len(state))),
            y=state,
            marker={"color": state, "colorscale": "RdBu", "cmin": -1, "cmax": 1},
            hovertemplate="unit %{x}: %{y:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_title="unit", yaxis={"range": [-1.05, 1.05]}
    )
    return figure


def states_heatmap(
    states: np.ndarray,
    tokens: Sequence[str],
    step: int,
    value_range: tuple[float, float] = (-1.0, 1.0),
    colorscale: str = "RdBu",
    height: int = 340,
) -> go.Figure:
    """Every state over the review's steps (units down, steps across), the chosen step marked; a gate's values (0 to
    1) or an LSTM's carry (unbounded) with their own range and colours."""
    figure = go.Figure(
        go.Heatmap(
            z=states.T,
            x=list(range(1, len(tokens) + 1)),
            zmin=value_range[0],
            zmax=value_range[1],
            colorscale=colorscale,
            # Plotly reads a few HTML tags in hover text; escaped, markers like <unk> show as they are.
            customdata=np.tile(np.array([html.escape(token) for token in tokens], dtype=object), (states.shape[1], 1)),
            hovertemplate="step %{x} (%{customdata}), unit %{y}: %{z:.3f}<extra></extra>",
        )
    )
    figure.add_vline(x=step, line_color="#111827", line_width=2)
    figure.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis_title="step", yaxis_title="unit"
    )
    return figure


# The Memory page's two charts give each model the same colour.
MODEL_COLOURS = plotly.colors.qualitative.Plotly


def memory_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> go.Figure:
    """The memory probe, model label -> (distances, positive, negative probabilities): a colour a model, the positive
    phrase's line solid and the negative's dashed."""
    figure = go.Figure()
    for index, (label, (distances, positive, negative)) in enumerate(curves.items()):
        colour = MODEL_COLOURS[index % len(MODEL_COLOURS)]
        for values, phrase, dash in ((positive, "positive", "solid"), (negative, "negative", "dash")):
            figure.add_trace(
                go.Scatter(
                    x=distances,
                    y=values,
                    mode="lines",
                    name=f"{label}: {phrase}",
                    legendgroup=label,
                    line={"color": colour, "dash": dash, "width": 2},
                    hovertemplate=f"{phrase} phrase %{{x}} words before the end: %{{y:.1%}}<extra></extra>",
                )
            )
    figure.update_layout(
        height=440,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"title": {"text": "words between the phrase and the end of the review"}},
        yaxis={"title": {"text": "positive probability"}, "range": [0, 1], "tickformat": ".0%"},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0},
    )
    return figure


def gradient_figure(lines: dict[str, tuple[np.ndarray, Sequence[str]]]) -> go.Figure:
    """The loop run backwards, model label -> (gradient sizes, tokens), both from the last word back: a line a model
    on a log scale, in memory_figure's colours."""
    figure = go.Figure()
    for index, (label, (sizes, tokens)) in enumerate(lines.items()):
        figure.add_trace(
            go.Scatter(
                x=np.arange(len(sizes)),
                y=sizes,
                mode="lines+markers",
                name=label,
                line={"color": MODEL_COLOURS[index % len(MODEL_COLOURS)], "width": 2},
                marker={"size": 4},
                # Escaped like the heatmap's: plotly reads a few HTML tags in hover text.
                customdata=np.array([html.escape(token) for token in tokens], dtype=object),
                hovertemplate="%{customdata}, %{x} words before the end: %{y:.2e}<extra></extra>",
            )
        )
    figure.update_layout(
        height=400,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"title": {"text": "words before the end of the review (0 = the last word)"}},
        yaxis={"title": {"text": "size of the gradient"}, "type": "log", "exponentformat": "power"},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
    )
    return figure
