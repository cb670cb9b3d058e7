"""Many visitors classifying reviews on one dashboard server at once: clicks a second, click times, server CPU, memory.

    python bench/load_test.py [--sessions 1,10,30] [--clicks 5] [--rate 25] [--soak 0] [--data $IMDB_DATA]
                              [--option runner.postScriptGC=true ...] [--json]

Starts `streamlit run dashboard/app.py` on 127.0.0.1 (a free port, empty runs and cache folders of its own, so the
Classify page scores with the shipped model), then for each N of --sessions opens N websocket sessions on the Classify
page, as many visitors would (bench/streamlit_session.py: Streamlit's own messages, no browser). Each session types a
real test review and clicks Classify (one message: the review and the click, a rerun of the page's fragment), waits
for the result and checks the shown positive probability against the Predictor's score for that review; then the next.

- closed loop: every session clicks again as soon as its result is in, --clicks times;
- offered rate (--rate R): the same N sessions click R times a second in all, evenly spread; a click's time counts
  from when it was due, so a click that waited for a busy session is as slow as the visitor saw it.

Per phase: clicks that got their right result, clicks a second (all clicks over the phase's wall time), median and
worst click time, the server's CPU time a click (its user + system time over the phase, from /proc) and its resident
memory at the end. --soak K then runs K more clicks of 30 sessions, opened and closed in turns as visitors come and
go, and prints the server's memory along the way. Every wait is bounded (--timeout a click); the server is stopped on
the way out. Exit status 1 when a click got no result or a wrong one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streamlit_session import RawSession, StreamlitServer  # noqa: E402
from core.paths import DEFAULT_MODEL, data_source  # noqa: E402

SHOWN = "Positive probability"  # the metric a click must bring back
SOAK_SESSIONS = 30


@dataclass
class Phase:
    sessions: int
    mode: str
    clicks: int
    right: int
    per_second: float
    median_s: float
    worst_s: float
    cpu_ms_a_click: float
    memory_mb: float


@dataclass
class Page:
    """What every session sends: the Classify page's ids (the same for every session: widgets have keys)."""

    review: str
    button: str
    fragment: str


def real_reviews(source: str, count: int, seed: int = 0) -> tuple[list[str], list[float]]:
    """count test reviews drawn at random, and the shipped model's score of each."""
    from core.data.load import read_reviews
    from core.scoring.predictor import Predictor

    texts = [review.text for review in read_reviews(source, "test")]
    texts = random.Random(seed).sample(texts, count)
    predictor = Predictor.from_file(DEFAULT_MODEL)
    return texts, [float(p.score) for p in predictor.predict(texts)]


def open_session(port: int) -> tuple[RawSession, Page]:
    session = RawSession(port).run()
    button = session.widget_id("Classify", "button")
    return session, Page(session.widget_id("Review", "text_area"), button, session.fragment_of.get(button, ""))


class Clicker:
    """One visitor: its session and the click times and results it saw."""

    def __init__(self, session: RawSession, page: Page, timeout: float) -> None:
        self.session, self.page, self.timeout = session, page, timeout
        self.times: list[float] = []
        self.right = 0

    def click(self, text: str, expected: float, started: float) -> None:
        try:
            self.session.run(
                {self.page.review: text}, self.timeout, triggers=[self.page.button], fragment_id=self.page.fragment
            )
        except (TimeoutError, OSError) as error:  # a click with no result: counted, not raised
            print(f"a click got no result: {error}", file=sys.stderr)
            return
        self.times.append(time.perf_counter() - started)
        shown = self.session.metrics().get(SHOWN, "")
        if shown.endswith("%") and abs(float(shown[:-1]) / 100 - expected) <= 0.0005 + 1e-6:
            self.right += 1
        else:
            print(f"a click showed {shown!r} for a review scored {expected:.4f}", file=sys.stderr)


def run_phase(
    server: StreamlitServer, sessions: int, clicks: int, rate: float | None, reviews, timeout: float
) -> Phase:
    texts, scores = reviews
    clickers = [Clicker(*open_session(server.port), timeout) for _ in range(sessions)]
    cpu_before, started = server.cpu_seconds(), time.perf_counter()

    def visitor(number: int, clicker: Clicker) -> None:
        for k in range(clicks):
            which = (number * clicks + k) % len(texts)
            if rate is None:
                due = time.perf_counter()
            else:
                due = started + (k * sessions + number) / rate
                time.sleep(max(due - time.perf_counter(), 0.0))
            clicker.click(texts[which], scores[which], due)

    threads = [threading.Thread(target=visitor, args=(n, c)) for n, c in enumerate(clickers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    for clicker in clickers:
        clicker.session.close()
    times = [t for clicker in clickers for t in clicker.times]
    total = sessions * clicks
    return Phase(
        sessions=sessions,
        mode="closed loop" if rate is None else f"{rate:g}/s offered",
        clicks=total,
        right=sum(clicker.right for clicker in clickers),
        per_second=len(times) / wall,
        median_s=statistics.median(times) if times else float("nan"),
        worst_s=max(times, default=float("nan")),
        cpu_ms_a_click=1000 * cpu / max(len(times), 1),
        memory_mb=server.memory_mb(),
    )


def table(phases: list[Phase]) -> str:
    lines = [
        f"{'sessions':>8}  {'mode':<14}{'right':>11}{'clicks/s':>10}{'median s':>10}{'worst s':>9}"
        f"{'cpu ms/click':>14}{'memory MB':>11}",
        "-" * 87,
    ]
    for p in phases:
        lines.append(
            f"{p.sessions:>8}  {p.mode:<14}{f'{p.right}/{p.clicks}':>11}{p.per_second:>10.1f}{p.median_s:>10.2f}"
            f"{p.worst_s:>9.2f}{p.cpu_ms_a_click:>14.0f}{p.memory_mb:>11.0f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,30", help="comma-separated session counts, one phase each")
    parser.add_argument("--clicks", type=int, default=5, help="clicks a session in each phase")
    parser.add_argument("--rate", type=float, default=25.0, help="offered clicks a second in all (0: closed loop only)")
    parser.add_argument("--soak", type=int, default=0, help="clicks of a memory soak after the phases")
    parser.add_argument("--data", default=None, help="aclImdb folder or archive (default: $IMDB_DATA)")
    parser.add_argument("--reviews", type=int, default=300, help="test reviews drawn at random to type")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a click may take before it counts lost")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a streamlit setting for the server"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()

    sessions = [int(n) for n in args.sessions.split(",") if n.strip()]
    options = []
    for option in args.option:
        key, separator, value = option.partition("=")
        if not separator:
            raise SystemExit(f"error: --option {option!r} is not KEY=VALUE")
        options += [f"--{key}", value]
    source = args.data or data_source()
    if not source:
        raise SystemExit("error: give --data or set IMDB_DATA: the visitors type real test reviews")
    reviews = real_reviews(source, args.reviews)

    with tempfile.TemporaryDirectory(prefix="load-test-") as folder:
        environment = {"IMDB_RUNS": f"{folder}/runs", "IMDB_CACHE": f"{folder}/cache", "IMDB_DATA": source}
        server = StreamlitServer(environment, Path(folder) / "streamlit.log", options=options)
        phases, soak = [], []
        try:
            server.wait_healthy()
            for count in sessions:
                phases.append(run_phase(server, count, args.clicks, None, reviews, args.timeout))
                if args.rate > 0:
                    phases.append(run_phase(server, count, args.clicks, args.rate, reviews, args.timeout))
            done = 0
            while done < args.soak:
                clicks = min(10, -(-(args.soak - done) // SOAK_SESSIONS))
                phases_soak = run_phase(server, SOAK_SESSIONS, clicks, None, reviews, args.timeout)
                done += phases_soak.clicks
                soak.append((done, phases_soak))
        finally:
            server.stop()

    everything = phases + [phase for _, phase in soak]
    lost = sum(phase.clicks - phase.right for phase in everything)
    if args.json:
        print(json.dumps({"phases": [asdict(p) for p in phases], "soak": [asdict(p) for _, p in soak], "lost": lost}))
    else:
        print(f"Classify page, shipped model, {os.cpu_count()} cores, client and server on this machine; "
              f"server options: {' '.join(options) or 'the repository config'}")
        print(table(phases))
        if soak:
            print(f"soak, {SOAK_SESSIONS} sessions at a time: memory MB after "
                  + ", ".join(f"{done:,} clicks {p.memory_mb:.0f}" for done, p in soak[:: max(len(soak) // 8, 1)]))
            print(f"soak: {sum(p.right for _, p in soak):,}/{sum(p.clicks for _, p in soak):,} right, "
                  f"median {statistics.median(p.median_s for _, p in soak):.2f} s, "
                  f"{statistics.median(p.cpu_ms_a_click for _, p in soak):.0f} cpu ms a click")
        print(f"load average at the end (1 min): {os.getloadavg()[0]:.2f}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
