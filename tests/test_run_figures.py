"""dashboard/run_figures.py: the book's two figures keep to the epochs a run has, their best-epoch label inside."""

import pytest

from dashboard.run_figures import history_figure


def _history(epochs: int, best: int) -> dict:
    """Validation loss lowest at epoch best (1-based)."""
    return {
        "loss": [0.7 - 0.05 * epoch for epoch in range(epochs)],
        "accuracy": [0.5 + 0.05 * epoch for epoch in range(epochs)],
        "val_loss": [0.6 if epoch + 1 != best else 0.3 for epoch in range(epochs)],
        "val_accuracy": [0.6 + 0.01 * epoch for epoch in range(epochs)],
    }


@pytest.mark.parametrize(
    ("epochs", "best", "side"), [(3, 3, "left"), (3, 1, "right"), (10, 2, "right"), (1, 1, "left")]
)
def test_the_x_axis_holds_the_epochs_run_and_the_best_epoch_label_reads_inwards(epochs, best, side):
    for metric in ("accuracy", "loss"):
        figure = history_figure(_history(epochs, best), metric, "title")
        assert tuple(figure.layout.xaxis.range) == (0.5, epochs + 0.5)
        (label,) = figure.layout.annotations
        assert label.text.endswith(f": {best}") and label.x == best
        # plotly anchors a label to the line's left edge when it runs rightwards, and the other way round.
        assert label.xanchor == ("right" if side == "left" else "left"), label
