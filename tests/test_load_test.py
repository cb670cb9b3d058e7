"""bench/load_test.py, small and bounded: a real server, a few websocket visitors and two Chromium pages typing real
test reviews."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.streamlit_session import ROOT

pytestmark = [pytest.mark.data, pytest.mark.browser]


def test_every_click_of_a_small_crowd_gets_its_own_right_result():
    command = [sys.executable, str(ROOT / "bench" / "load_test.py"), "--sessions", "1,4", "--clicks", "3"]
    command += ["--rate", "8", "--browsers", "2", "--think", "0.5", "--reviews", "40", "--timeout", "60", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    phases = report["phases"]
    assert [(p["sessions"], p["mode"]) for p in phases] == [
        (1, "closed loop"), (1, "8/s offered"), (4, "closed loop"), (4, "8/s offered"), (2, "browsers"),
        (2, "browsers, 0.5 s"),
    ]
    # Each click's shown probability and words read were checked against Predictor.explain for the review it typed.
    assert all(p["right"] == p["clicks"] == p["sessions"] * 3 for p in phases), phases
    assert report["lost"] == 0
    assert all(p["per_second"] > 0 and p["worst_s"] >= p["median_s"] > 0 for p in phases), phases


def test_a_setting_that_is_not_key_value_is_one_line():
    command = [sys.executable, str(ROOT / "bench" / "load_test.py"), "--option", "runner.postScriptGC"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["error: --option 'runner.postScriptGC' is not KEY=VALUE"]
