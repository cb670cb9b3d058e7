"""Attacks on a real `streamlit run` server (127.0.0.1), sent as raw websocket and HTTP messages, no browser.

The server is read-only with an admin password, as a shared one is. Each attack is bounded in count and time, and
the server's state is checked afterwards: who is unlocked, what its log says, what memory the uploads hold.
"""

import http.cookiejar
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.browser_support import dashboard_environment, running_server
from bench.streamlit_session import RawSession

pytestmark = pytest.mark.slow  # a real server each module: seconds

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password
UNLOCKED = "This session can change things."
MB = 1024**2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    environment = dashboard_environment(root, IMDB_READ_ONLY="1", IMDB_ADMIN_PASSWORD=PASSWORD)
    with running_server(environment, root / "streamlit.log") as started:
        yield started


def _unlocked(session: RawSession) -> bool:
    return UNLOCKED in session.texts()


def test_an_unlocked_session_is_not_given_back_to_a_connection_presenting_its_id(server):
    owner = RawSession(server.port).run()
    assert owner.session_id and not _unlocked(owner)
    owner.run({owner.widget_id("Admin password"): PASSWORD})
    assert _unlocked(owner), owner.texts()
    session_id = owner.session_id
    owner.close()
    time.sleep(1.0)  # the tab is gone; Streamlit keeps its session for a reconnection
    intruder = RawSession(server.port, resume=session_id).run()
    try:
        assert not _unlocked(intruder), "the closed tab's unlocked session was handed to another connection"
        assert intruder.session_id != session_id
        intruder.widget_id("Admin password")  # a new, locked session: the password field is there
    finally:
        intruder.close()


def test_password_guesses_over_the_websocket_are_slowed_to_a_trickle(server):
    guesser = RawSession(server.port).run()
    field = guesser.widget_id("Admin password")
    started, answers = time.perf_counter(), []
    for number in range(12):  # twelve guesses as fast as the server answers
        guesser.run({field: f"guess {number}"})
        answers.append(" ".join(text for text in guesser.texts() if "Wrong password" in text or "Too many" in text))
    elapsed = time.perf_counter() - started
    guesser.run({field: PASSWORD})  # the right one, sent while the session waits: not read
    try:
        assert not _unlocked(guesser)
        read = sum("Wrong password." in answer for answer in answers)
        assert read <= 4, answers  # three free attempts and the one after them; the rest were not read
        assert sum("Too many attempts" in answer for answer in answers) >= 8
        assert elapsed < 30
    finally:
        guesser.close()


def test_a_read_only_session_cannot_clear_the_servers_caches(server):
    visitor = RawSession(server.port).run()
    visitor.clear_caches()
    visitor.run()
    visitor.close()
    deadline = time.monotonic() + 10
    log = ""
    while time.monotonic() < deadline:
        log = server.log_path.read_text(errors="replace")
        if "Refused a request to clear the caches" in log:
            break
        time.sleep(0.2)
    assert "Refused a request to clear the caches from a session that cannot write." in log


def _upload(server, session_id: str, size: int, opener, name: str = "big.csv") -> int:
    """PUT one file of size bytes to the session's upload endpoint, as the page's uploader does; the HTTP status."""
    token = next(cookie.value for cookie in opener.cookie_jar if cookie.name == "_streamlit_xsrf")
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"UploadedFile\"; filename=\"{name}\"\r\n"
        "Content-Type: text/csv\r\n\r\n"
    ).encode() + b"x" * size + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(  # noqa: S310 - the test's own server on 127.0.0.1
        f"{server.url}/_stcore/upload_file/{session_id}/{uuid.uuid4()}",
        data=body,
        method="PUT",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": token},
    )
    try:
        with opener.open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_uploads_no_widget_asked_for_stop_at_the_sessions_budget_and_memory_stays_bounded(server):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.cookie_jar = jar
    opener.open(f"{server.url}/_stcore/health", timeout=30).read()  # sets the XSRF cookie, as for the page
    visitor = RawSession(server.port).run()
    try:
        before = server.memory_mb()
        statuses = [_upload(server, visitor.session_id, 49 * MB, opener) for _ in range(6)]
        after = server.memory_mb()
    finally:
        visitor.close()
    assert statuses[0] == 204 and set(statuses[1:]) == {413}, statuses
    # A name with a NUL byte, which would make Streamlit's uploader raise on every rerun of the session, is not kept.
    other = RawSession(server.port).run()
    try:
        assert _upload(server, other.session_id, 10, opener, name="a\x00b.csv") == 413
        assert _upload(server, other.session_id, 10, opener, name="fine.csv") == 204
    finally:
        other.close()
    assert after - before < 3 * 49, f"the server grew from {before:,.0f} MB to {after:,.0f} MB"
    # The visitor leaves: its upload is dropped with its connection, not minutes later.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and server.memory_mb() > before + 20:
        time.sleep(0.5)
    assert server.memory_mb() <= before + 20, f"{server.memory_mb():,.0f} MB after leaving"
