"""Many visitors classifying reviews on one dashboard server at once: clicks a second, click times, server CPU, memory.

    python bench/load_test.py [--sessions 1,10,30] [--clicks 5] [--rate 25] [--browsers 10] [--think 3] [--soak 0]
                              [--data $IMDB_DATA] [--option runner.postScriptGC=true ...] [--json]

Starts `streamlit run dashboard/app.py` on 127.0.0.1 (a free port, empty runs and cache folders of its own, so the
Classify page scores with the shipped model), then for each N of --sessions opens N websocket sessions on the Classify
page, as many visitors would (bench/streamlit_session.py: Streamlit's own messages, no browser). Each session types a
real test review and clicks Classify (one message: the review and the click, a rerun of the page's fragment), waits
for the result and checks what the page shows (the positive probability and the words read) against what
core.scoring.explanation.explain gives for that review; then the next.

- closed loop: every session clicks again as soon as its result is in, --clicks times;
- offered rate (--rate R): the same N sessions click R times a second in all, evenly spread; a click's time counts
  from when it was due, so a click that waited for a busy session is as slow as the visitor saw it;
- browsers (--browsers N): N Chromium pages (Debian's, through playwright) type a review into the box and click
  Classify as a person does, closed loop, with the browser's own messages; a click's time runs to the result on the
  page (its probability and words read as the page must show them). Then again as readers (--think T): each page
  arrives within T seconds of the others and reads each result for 0.5T to 1.5T seconds before the next review, the
  pace of people rather than of a script (on one machine, closed-loop pages measure the visitors' own CPU as much
  as the server).

Per phase: clicks that got their right result, clicks a second (all clicks over the phase's wall time), median and
worst click time, the server's CPU time a click (its user + system time over the phase, from /proc), its resident
memory at the end, and the client's CPU time a click (this script's, and Chromium's in the browser phase: on one
machine the visitors' side competes with the server for the same cores). --soak K then runs K more clicks of 30
sessions, opened and closed in turns as visitors come and go, and prints the server's memory along the way. Every
wait is bounded (--timeout a click); the server is stopped on the way out. Exit status 1 when a click got no result
or a wrong one.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.streamlit_session import (  # noqa: E402
    CHROMIUM, CHROMIUM_ARGS, RawSession, StreamlitServer, process_cpu_seconds
)
from core.paths import DEFAULT_MODEL, data_source  # noqa: E402

SOAK_SESSIONS = 30
# Resolves once a browser page shows this review's result: its probability and its count of words read, as the page
# words them (two reviews in a row with the same two figures would end a wait early: rare, and it shortens one click).
# A MutationObserver looks when the page changes, where playwright's wait_for_function would look at every animation
# frame: 60 times a second a page, which ten waiting pages pay in CPU that then counts against the visitors' side.
RESULT_SHOWN = """([probability, words]) => new Promise((resolve) => {
    const value = (label) => {
        const main = document.querySelector('[data-testid="stMain"]');
        const metrics = main ? [...main.querySelectorAll('[data-testid="stMetric"]')] : [];
        const metric = metrics.find(m => m.textContent.startsWith(label));
        return metric && metric.querySelector('[data-testid="stMetricValue"]').textContent.trim();
    };
    const shown = () => value('Positive probability') === probability && value('Tokens used') === words;
    if (shown()) return resolve(true);
    const watch = new MutationObserver(() => {
        if (shown()) { watch.disconnect(); resolve(true); }
    });
    watch.observe(document.body, {childList: true, subtree: true, characterData: true});
})"""


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
    client_ms_a_click: float  # this script's CPU, and in the browser phase Chromium's, a click


@dataclass
class Review:
    """A review to type and what the Classify page must show for it with the shipped model."""

    text: str
    shown: str  # the positive probability, as the page writes it
    words: str  # the words read ("Tokens used"), as the page writes it


@dataclass
class Page:
    """What every session sends: the Classify page's ids (the same for every session: widgets have keys)."""

    review: str
    button: str
    fragment: str


def real_reviews(source: str, count: int, seed: int = 0) -> list[Review]:
    """count test reviews drawn at random, each with the result the page must show (explain, as the page)."""
    from core.data import read_reviews
    from core.scoring import Predictor, explain

    texts = random.Random(seed).sample([review.text for review in read_reviews(source, "test")], count)
    predictor = Predictor.from_file(DEFAULT_MODEL)
    reviews = []
    for text in texts:
        explanation = explain(predictor, text)
        reviews.append(Review(text, f"{explanation.prediction.score:.1%}", f"{explanation.words_read:,}"))
    return reviews


def chromium_cpu_seconds() -> float:
    """The CPU time of every Chromium process on the machine so far (Linux: /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # a process that ended while read
            continue
        if text.split(" (", 1)[1].startswith(("chromium", "chrome")):
            total += process_cpu_seconds(text)
    return total


def client_cpu_seconds(browsers: bool = False) -> float:
    own = os.times()
    return own.user + own.system + (chromium_cpu_seconds() if browsers else 0.0)


def summary(
    server: StreamlitServer, sessions: int, mode: str, clicks: int, right: int, times: list[float], wall: float,
    cpu: float, client: float,
) -> Phase:
    return Phase(
        sessions=sessions,
        mode=mode,
        clicks=clicks,
        right=right,
        per_second=len(times) / wall,
        median_s=statistics.median(times) if times else float("nan"),
        worst_s=max(times, default=float("nan")),
        cpu_ms_a_click=1000 * cpu / max(len(times), 1),
        memory_mb=server.memory_mb(),
        client_ms_a_click=1000 * client / max(len(times), 1),
    )


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

    def click(self, review: Review, started: float) -> None:
        try:
            self.session.run(
                {self.page.review: review.text}, self.timeout, triggers=[self.page.button],
                fragment_id=self.page.fragment,
            )
        except (TimeoutError, OSError) as error:  # a click with no result: counted, not raised
            print(f"a click got no result: {error}", file=sys.stderr)
            return
        self.times.append(time.perf_counter() - started)
        shown = self.session.metrics()
        if (shown.get("Positive probability"), shown.get("Tokens used")) == (review.shown, review.words):
            self.right += 1
        else:
            print(f"a click showed {shown} for a review the page must show as {review}", file=sys.stderr)


def run_phase(
    server: StreamlitServer, sessions: int, clicks: int, rate: float | None, reviews: list[Review], timeout: float
) -> Phase:
    clickers = [Clicker(*open_session(server.port), timeout) for _ in range(sessions)]
    cpu_before, client_before, started = server.cpu_seconds(), client_cpu_seconds(), time.perf_counter()

    def visitor(number: int, clicker: Clicker) -> None:
        for k in range(clicks):
            if rate is None:
                due = time.perf_counter()
            else:
                due = started + (k * sessions + number) / rate
                time.sleep(max(due - time.perf_counter(), 0.0))
            clicker.click(reviews[(number * clicks + k) % len(reviews)], due)

    threads = [threading.Thread(target=visitor, args=(n, c)) for n, c in enumerate(clickers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu, client = server.cpu_seconds() - cpu_before, client_cpu_seconds() - client_before
    for clicker in clickers:
        clicker.session.close()
    times = [t for clicker in clickers for t in clicker.times]
    mode = "closed loop" if rate is None else f"{rate:g}/s offered"
    right = sum(clicker.right for clicker in clickers)
    return summary(server, sessions, mode, sessions * clicks, right, times, wall, cpu, client)


async def browser_phase(
    server: StreamlitServer, sessions: int, clicks: int, reviews: list[Review], timeout: float, think: float = 0.0
) -> Phase:
    """sessions Chromium pages, each typing a review into the box and clicking Classify as a person does: closed loop,
    or (think > 0) arriving within think seconds of each other and pausing between 0.5 and 1.5 times think seconds
    after each result, as readers; a click's time runs from the click to the result on the page."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(sessions):
                context = await browser.new_context(viewport={"width": 1400, "height": 1000})
                context.set_default_timeout(timeout * 1000)
                page = await context.new_page()
                await page.goto(server.url)
                await page.get_by_role("textbox", name="Review", exact=True).wait_for()
                pages.append(page)
            cpu_before, client_before = server.cpu_seconds(), client_cpu_seconds(browsers=True)
            started = time.perf_counter()
            times: list[float] = []
            pace = random.Random(sessions)

            async def visitor(number: int, page) -> None:
                if think:  # readers arrive at their own times, not all in the same instant
                    await asyncio.sleep(pace.uniform(0.0, think))
                for k in range(clicks):
                    review = reviews[(number * clicks + k) % len(reviews)]
                    await page.get_by_role("textbox", name="Review", exact=True).fill(review.text)
                    clicked = time.perf_counter()
                    try:
                        await page.get_by_role("button", name="Classify", exact=True).click()
                        await asyncio.wait_for(page.evaluate(RESULT_SHOWN, [review.shown, review.words]), timeout)
                    except (PlaywrightError, TimeoutError) as error:  # a click with no result: counted, not raised
                        print(f"a click got no result: {(str(error) or 'timed out').splitlines()[0]}", file=sys.stderr)
                        continue
                    times.append(time.perf_counter() - clicked)
                    if think:  # a person reads the result before the next review: think seconds on average
                        await asyncio.sleep(pace.uniform(0.5 * think, 1.5 * think))

            await asyncio.gather(*(visitor(number, page) for number, page in enumerate(pages)))
            wall = time.perf_counter() - started
            cpu, client = server.cpu_seconds() - cpu_before, client_cpu_seconds(browsers=True) - client_before
        finally:
            await browser.close()
    # A browser click is right when its own result showed: those are the clicks that were timed.
    mode = f"browsers, {think:g} s" if think else "browsers"
    return summary(server, sessions, mode, sessions * clicks, len(times), times, wall, cpu, client)


def table(phases: list[Phase]) -> str:
    lines = [
        f"{'sessions':>8}  {'mode':<14}{'right':>11}{'clicks/s':>10}{'median s':>10}{'worst s':>9}"
        f"{'cpu ms/click':>14}{'memory MB':>11}{'client cpu ms/click':>21}",
        "-" * 108,
    ]
    for p in phases:
        lines.append(
            f"{p.sessions:>8}  {p.mode:<14}{f'{p.right}/{p.clicks}':>11}{p.per_second:>10.1f}{p.median_s:>10.2f}"
            f"{p.worst_s:>9.2f}{p.cpu_ms_a_click:>14.0f}{p.memory_mb:>11.0f}{p.client_ms_a_click:>21.0f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,30", help="comma-separated session counts, one phase each")
    parser.add_argument("--clicks", type=int, default=5, help="clicks a session in each phase")
    parser.add_argument("--rate", type=float, default=25.0, help="offered clicks a second in all (0: closed loop only)")
    parser.add_argument("--browsers", default="10", help="comma-separated Chromium page counts (0: none)")
    parser.add_argument(
        "--think", type=float, default=3.0, help="browsers again, reading each result this long on average (0: none)"
    )
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
    browsers = [int(n) for n in args.browsers.split(",") if n.strip() and int(n) > 0]
    if browsers and not Path(CHROMIUM).is_file():
        raise SystemExit(f"error: no {CHROMIUM} for --browsers (apt-get install chromium), or give --browsers 0")
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
            for count in browsers:
                phases.append(asyncio.run(browser_phase(server, count, args.clicks, reviews, args.timeout)))
                if args.think > 0:
                    phases.append(
                        asyncio.run(browser_phase(server, count, args.clicks, reviews, args.timeout, args.think))
                    )
            done = 0
            while done < args.soak:
                clicks = min(10, -(-(args.soak - done) // SOAK_SESSIONS))
                phase = run_phase(server, SOAK_SESSIONS, clicks, None, reviews, args.timeout)
                done += phase.clicks
                soak.append((done, phase))
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
