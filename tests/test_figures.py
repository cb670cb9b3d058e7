"""dashboard/figures.py: the trajectory chart, built without plotly's validation for speed, is a valid figure of the
review's own numbers; and the coloured words under it (dashboard/widgets.py)."""

import json
import re

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from dashboard.figures import trajectory_figure
from dashboard.widgets import STRONG_STEP, VISIBLE_STEP, coloured_words
from tests.browser_support import plotly_values


@pytest.mark.parametrize("count", [0, 3, 31, 500])
def test_the_trajectory_figure_is_valid_and_holds_the_reviews_numbers(count):
    generator = np.random.default_rng(count)
    words = [f"word{k}" for k in range(count)]
    steps, changes = generator.random(count), generator.normal(0.0, 0.05, count)
    figure = trajectory_figure(words, steps, changes, 0.4)
    # plotly's own validation, which the dashboard skips on every click, accepts every part of it.
    validated = go.Figure(figure.to_dict())
    assert len(validated.data) == (2 if count else 1)
    # What Streamlit sends (st.plotly_chart: to_dict, then JSON), read back.
    spec = json.loads(pio.to_json(figure.to_dict(), validate=False))
    line = spec["data"][0]
    assert line["type"] == "scatter"
    np.testing.assert_allclose(plotly_values(line["y"]), steps)
    assert plotly_values(line["x"]) == list(range(1, count + 1))
    assert line["text"] == words  # hover: the word, its probability and its change
    np.testing.assert_allclose(plotly_values(line["customdata"]), changes)
    assert spec["layout"]["shapes"][0]["y0"] == 0.4
    if not count:
        return
    strip = spec["data"][1]
    assert strip["type"] == "heatmap" and strip["yaxis"] == "y2" and strip["zmid"] == 0.0
    np.testing.assert_allclose(plotly_values(strip["z"]), changes)  # one cell a word, coloured by its change
    assert strip["text"] == [words]
    # Red down, green up, spelled out (Streamlit's theme replaces a scale given by its name).
    scale = strip["colorscale"]
    assert isinstance(scale, list) and scale[0][1] == "rgb(165,0,38)" and scale[-1][1] == "rgb(0,104,55)"
    # Up to 30 words the axis is labelled with the words themselves, each a dot on the line.
    labelled = spec["layout"]["xaxis"].get("ticktext")
    assert (labelled == words) if count <= 30 else labelled is None
    assert line["mode"] == ("lines+markers" if count <= 30 else "lines")


def test_coloured_words_share_a_directive_a_run_of_one_colour_and_stay_escaped():
    words = ["a", "great", "film", "zzz", "bad", "ok", "[x](y)", "end"]
    changes = [VISIBLE_STEP, STRONG_STEP, 0.0, -VISIBLE_STEP, -STRONG_STEP, VISIBLE_STEP / 2, VISIBLE_STEP, 0.0]
    unknown = [False, False, False, True, False, False, False, False]
    shown = coloured_words(words, changes, unknown)
    assert shown == (
        ":green-background[a **great**] film :red-background[*zzz* **bad**] ok :green-background[\\[x\\]\\(y\\)] end"
    )
    # Every word once, in order, whatever the grouping.
    plain = [word.strip("*") for word in re.sub(r":(green|red)-background\[|\](?= |$)", " ", shown).split()]
    assert [word.replace("\\", "") for word in plain] == words
    assert coloured_words([], [], []) == ""
