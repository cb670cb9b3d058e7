"""Who may change things in this session: read-only mode, the admin password, and safe names from the browser.

The one place that decides whether a session may write (train, stop, delete, export, quantize, save a threshold,
store an upload). Pages ask `can_write()` to draw, and `require_write(action)` in the handler of each write, so a
refusal happens on the server even when a button is clicked that the page did not draw.

Settings, each read from the environment first, then from Streamlit's secrets (`.streamlit/secrets.toml`, or the
Secrets box of Streamlit Community Cloud):

| setting | environment | secrets.toml |
|---|---|---|
| read-only mode | `IMDB_READ_ONLY` = 1/true/yes/on or 0/false/no/off | `read_only = true` |
| admin password | `IMDB_ADMIN_PASSWORD` | `admin_password = "..."` |

Policy:

- read-only off (or not set, see below) and no password: everyone may write (one user on their own machine);
- read-only on, or a password set: a session may write only after entering the password in the sidebar;
- read-only on and no password: nobody writes.

When neither setting is given, the server's listening address decides: on a loopback address (127.x, localhost, ::1:
the repository's `.streamlit/config.toml` and `make run`) everyone may write; on any other address (0.0.0.0 from
`make run HOST=0.0.0.0` included) or with none (every interface, as a run without the repository's config has), the
dashboard is read-only, so sharing it on a network never opens the writes by accident. `IMDB_READ_ONLY=0` opens them
on purpose. The address cannot see a reverse proxy on the same machine: a server on 127.0.0.1 published by a proxy (or
by a hosting service that fronts it) is public, so such a deployment sets `IMDB_READ_ONLY=1` or `read_only = true`.

A value that cannot be read (`IMDB_READ_ONLY=maybe`, a secrets.toml that does not parse) fails safe: read-only, with
one line in the sidebar saying what to fix. The password is compared with `hmac.compare_digest`, never logged, never
shown, and never kept in the session: the session keeps only a flag saying it was unlocked.
"""

from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
import math
import os
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

_LOGGER = logging.getLogger(__name__)

# The settings' names. Bandit takes any string named *password* for a password: these are names (nosec B105).
READ_ONLY_VARIABLE = "IMDB_READ_ONLY"
PASSWORD_VARIABLE = "IMDB_ADMIN_PASSWORD"  # nosec B105
READ_ONLY_SECRET = "read_only"  # nosec B105
PASSWORD_SECRET = "admin_password"  # nosec B105

# Rows a read-only session may classify in one CSV batch: enough to try the model, not enough to hold the server.
BATCH_ROW_CAP_READ_ONLY = 10_000

# Widget keys of the sidebar, and the session keys holding booleans (never the password itself).
PASSWORD_KEY = "admin_password"  # nosec B105
UNLOCK_KEY = "admin_unlock"
LOCK_KEY = "admin_lock"
UNLOCKED_KEY = "access_unlocked"
WRONG_PASSWORD_KEY = "access_wrong_password"  # nosec B105
FAILURES_KEY = "access_failures"  # wrong passwords this session sent
RETRY_AT_KEY = "access_retry_at"  # time.monotonic() before which this session's attempts are not read
WAIT_KEY = "access_wait"  # seconds to say on the page: the attempt just sent was not read

# Guessing the password is slow: a session may send FREE_ATTEMPTS wrong ones, then waits 2, 4, 8 ... up to
# MAX_WAIT_SECONDS before its next attempt is read; the whole server reads at most SERVER_ATTEMPTS attempts in any
# SERVER_WINDOW_SECONDS (new sessions cost an attacker nothing; this bounds them all). Longer attempts than
# MAX_PASSWORD_CHARS are wrong without being compared.
MAX_PASSWORD_CHARS = 256
FREE_ATTEMPTS = 3
MAX_WAIT_SECONDS = 60.0
SERVER_ATTEMPTS = 20
SERVER_WINDOW_SECONDS = 60.0

# Longest download name download_name() returns, suffix included.
MAX_DOWNLOAD_NAME = 100

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,16})*")

Choice = TypeVar("Choice")


@dataclass(frozen=True)
class AccessPolicy:
    """What this server allows, from its settings; the password itself is never part of it."""

    read_only: bool  # True: a session writes only after entering the admin password (or never, without one)
    password_configured: bool  # an admin password is set, so a session can unlock the writes
    reason: str  # one sentence for people: which setting decided, and how to change it
    problem: str | None = None  # a setting that could not be read; the policy is then read-only until it is fixed


# ---- Settings ------------------------------------------------------------------------------------------------------


def is_loopback(address: str | None) -> bool:
    """True when a server bound to address is reachable from this machine only; empty means every interface."""
    host = (address or "").strip().strip("[]")
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A host name other than localhost may resolve to anything: treated as shared.
        return False


def _parse_switch(value: Any, where: str) -> tuple[bool | None, str | None]:
    # (the switch, None), (None, None) when unset, or (None, one line saying what is wrong).
    if isinstance(value, bool):
        return value, None
    if value is None:
        return None, None
    if isinstance(value, int | str):
        text = str(value).strip().lower()
        if not text:
            return None, None
        if text in _TRUE:
            return True, None
        if text in _FALSE:
            return False, None
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return None, f"{where} is {shown}, which is neither on nor off: use 1 or 0 (true/false, yes/no, on/off)."


def _read_secrets() -> tuple[Mapping[str, Any], str | None]:
    """Streamlit's secrets as a mapping, and a problem line when a secrets file exists but cannot be read."""
    # load_if_toml_exists() is Streamlit's quiet probe: a missing file neither raises nor shows "No secrets found".
    if st.secrets.load_if_toml_exists():
        return st.secrets.to_dict(), None
    files = [Path(name) for name in st.get_option("secrets.files") or []]
    if any(path.is_file() or path.is_dir() for path in files):
        return {}, (
            "The secrets file could not be read (Streamlit's log says why), so the dashboard is read-only: "
            "fix .streamlit/secrets.toml and restart."
        )
    return {}, None


def resolve_policy(
    environment: Mapping[str, str], secrets: Mapping[str, Any], address: str | None, secrets_problem: str | None = None
) -> AccessPolicy:
    """The policy for these settings and this listening address; pure, so every combination is testable."""
    problems = [secrets_problem] if secrets_problem else []

    raw_switch = environment.get(READ_ONLY_VARIABLE, "")
    switch_source = f"{READ_ONLY_VARIABLE}={raw_switch.strip()}"
    switch, problem = _parse_switch(raw_switch, READ_ONLY_VARIABLE)
    if problem is None and switch is None and READ_ONLY_SECRET in secrets:
        switch_source = f"{READ_ONLY_SECRET} = {str(secrets[READ_ONLY_SECRET]).lower()} in the secrets"
        switch, problem = _parse_switch(secrets[READ_ONLY_SECRET], f"{READ_ONLY_SECRET} in the secrets")
    if problem:
        problems.append(problem)

    password, problem = _configured_password(environment, secrets)
    if problem:
        problems.append(problem)
    password_configured = password is not None

    if problems:
        unlock = " Enter the admin password to change things." if password_configured else ""
        reason = "A setting could not be read, so this server is read-only." + unlock
        return AccessPolicy(True, password_configured, reason, " ".join(problems))
    if password_configured:
        mode = "Read-only mode is on" if switch else "An admin password is set"
        return AccessPolicy(True, True, f"{mode}: enter the admin password to change things.")
    if switch is True:
        reason = f"Read-only mode is on ({switch_source}) and no admin password is set: nobody can change things here."
        return AccessPolicy(True, False, reason)
    if switch is False:
        return AccessPolicy(False, False, f"Read-only mode is off ({switch_source}) and no admin password is set.")
    if is_loopback(address):
        return AccessPolicy(False, False, "The server listens on this machine only, so this session can change things.")
    where = f"address {address}" if (address or "").strip() else "every network interface"
    return AccessPolicy(
        True,
        False,
        f"The server listens on {where} and no admin password is set, so it is read-only: set "
        f"{PASSWORD_VARIABLE} (or admin_password in the secrets) to unlock it, or {READ_ONLY_VARIABLE}=0 to open it.",
    )


def _configured_password(environment: Mapping[str, str], secrets: Mapping[str, Any]) -> tuple[str | None, str | None]:
    # (the password or None, a problem line or None). Blank counts as unset: an empty password would unlock for anyone.
    value = environment.get(PASSWORD_VARIABLE, "")
    if value.strip():
        return value, None
    value = secrets.get(PASSWORD_SECRET)
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, f'{PASSWORD_SECRET} in the secrets must be text in quotes (admin_password = "...").'
    return (value if value.strip() else None), None


def policy() -> AccessPolicy:
    """This server's policy now: environment, then Streamlit's secrets, then the listening address."""
    secrets, secrets_problem = _read_secrets()
    return resolve_policy(os.environ, secrets, st.get_option("server.address"), secrets_problem)


# ---- The password ----------------------------------------------------------------------------------------------------


def _password_bytes(text: str) -> bytes:
    # NFC first: the same password typed on two systems may arrive composed or decomposed (e + accent).
    return unicodedata.normalize("NFC", text).encode("utf-8")


def check_password(candidate: str) -> bool:
    """True when candidate is the configured admin password (compared in constant time); False without a password."""
    secrets, _ = _read_secrets()
    password, _ = _configured_password(os.environ, secrets)
    if password is None or not candidate:
        return False
    return hmac.compare_digest(_password_bytes(candidate), _password_bytes(password))


class _AttemptWindow:
    """The times of the password attempts the server read in the last SERVER_WINDOW_SECONDS, for every session."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self, now: float) -> float:
        """0 and the attempt counted when the server may read one now, else the seconds until it may."""
        with self._lock:
            while self._times and self._times[0] <= now - SERVER_WINDOW_SECONDS:
                self._times.popleft()
            if len(self._times) >= SERVER_ATTEMPTS:
                return self._times[0] + SERVER_WINDOW_SECONDS - now
            self._times.append(now)
            return 0.0


SERVER_ATTEMPTS_READ = _AttemptWindow()


def _now() -> float:
    return time.monotonic()


def _session_wait(failures: int) -> float:
    """Seconds a session waits after its failures-th wrong password."""
    return 0.0 if failures <= FREE_ATTEMPTS else min(2.0 ** (failures - FREE_ATTEMPTS), MAX_WAIT_SECONDS)


def _forbid_resume() -> None:
    """An unlocked session ends with its connection: Streamlit keeps a closed tab's session for a while, and a new
    connection naming its id would get it back, unlocked. Marked non-resumable, such a connection gets a new session."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if context is not None:
        _mark_nonresumable(context.session_id)


def _mark_nonresumable(session_id: str) -> None:
    from streamlit.runtime import Runtime

    if Runtime.exists():  # a server (AppTest runs pages without one)
        Runtime.instance().mark_session_nonresumable(session_id)


def _attempt_unlock() -> None:
    # The input's callback (Enter) and the Unlock button's: read the attempt, clear the field at once, keep booleans
    # and counts.
    candidate = st.session_state.get(PASSWORD_KEY) or ""
    st.session_state[PASSWORD_KEY] = ""
    if not candidate:
        # Enter already used the attempt and cleared the field, then Unlock's click arrives: nothing to check.
        return
    now = _now()
    wait = st.session_state.get(RETRY_AT_KEY, 0.0) - now
    if wait <= 0:  # the server's window is asked only for attempts the session's own wait lets through
        wait = SERVER_ATTEMPTS_READ.take(now)
    if wait > 0:
        st.session_state[WAIT_KEY] = wait  # not read, not counted
        return
    if len(candidate) <= MAX_PASSWORD_CHARS and check_password(candidate):
        st.session_state[UNLOCKED_KEY] = True
        for key in (WRONG_PASSWORD_KEY, FAILURES_KEY, RETRY_AT_KEY):
            st.session_state.pop(key, None)
        _forbid_resume()
    else:
        failures = st.session_state.get(FAILURES_KEY, 0) + 1
        st.session_state[FAILURES_KEY] = failures
        st.session_state[RETRY_AT_KEY] = now + _session_wait(failures)
        st.session_state[WRONG_PASSWORD_KEY] = True


def _lock() -> None:
    st.session_state[UNLOCKED_KEY] = False


def guard_cache_clearing() -> None:
    """Refuse Streamlit's "clear cache" request from a session that may not write, once a process.

    Any browser can send it (the app menu's Clear cache, or a forged message), and Streamlit then empties every cache
    for every session: the next visitor pays the loads again, and a page that follows a training by a cached
    resource loses track of it. A session that may write (on this machine, or unlocked) still can."""
    from streamlit.runtime.app_session import AppSession

    original = AppSession._handle_clear_cache_request
    if getattr(original, "guarded_by_access", False):
        return

    def handle_clear_cache_request(session) -> None:
        try:
            unlocked = session._session_state[UNLOCKED_KEY] is True
        except KeyError:
            unlocked = False
        current = policy()
        if current.read_only and not (current.password_configured and unlocked):
            _LOGGER.warning("Refused a request to clear the caches from a session that cannot write.")
            return
        original(session)

    handle_clear_cache_request.guarded_by_access = True
    AppSession._handle_clear_cache_request = handle_clear_cache_request


# What uploads may hold in the server's memory (Streamlit keeps every uploaded file of a session until the session
# ends): a session, one file of server.maxUploadSize (50 MB) and a little more; the server, all sessions together.
SESSION_UPLOAD_BYTES = 60 * 1024**2
SERVER_UPLOAD_BYTES = 400 * 1024**2
_upload_lock = threading.Lock()


def upload_refusal(stored_by_session: int, stored_in_all: int, size: int) -> str | None:
    """Why an upload of size bytes is refused, given what the session and the server hold; None when it fits."""
    if stored_by_session + size > SESSION_UPLOAD_BYTES:
        return f"this session's uploads would pass {SESSION_UPLOAD_BYTES // 1024**2} MB: remove one first"
    if stored_in_all + size > SERVER_UPLOAD_BYTES:
        return f"the server holds {SERVER_UPLOAD_BYTES // 1024**2} MB of uploads already: try again in a few minutes"
    return None


def guard_uploads() -> None:
    """Bound what uploads hold, once a process: maxUploadSize bounds a file, not a visitor, and any visitor can send
    files to the upload endpoint for their own session, used by a widget or not. An upload past the session's or the
    server's budget (upload_refusal) is answered 413 and not kept."""
    from starlette.exceptions import HTTPException
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager

    original = MemoryUploadedFileManager.add_file
    if getattr(original, "guarded_by_access", False):
        return

    def add_file(manager, session_id, file) -> None:
        with _upload_lock:  # the check and the add together: two uploads cannot both pass the same room
            with manager._lock:
                kept = manager.file_storage.get(session_id, {})
                by_session = sum(len(record.data) for key, record in kept.items() if key != file.file_id)
                replaced = len(kept[file.file_id].data) if file.file_id in kept else 0
                in_all = manager._total_bytes - replaced
            refusal = upload_refusal(by_session, in_all, len(file.data))
            if any(unicodedata.category(character) == "Cc" for character in file.name):
                # Streamlit's uploader raises on every rerun of a session holding a file whose name has a NUL byte.
                refusal = "the file's name holds a control character (such as NUL): rename the file"
            if refusal is not None:
                _LOGGER.warning("Refused an upload of %d bytes: %s.", len(file.data), refusal)
                raise HTTPException(status_code=413, detail=f"Upload refused: {refusal}.")
            original(manager, session_id, file)

    add_file.guarded_by_access = True
    MemoryUploadedFileManager.add_file = add_file
    _free_uploads_on_disconnect()


def _free_uploads_on_disconnect() -> None:
    """A session's uploads are dropped when its connection closes: Streamlit keeps a closed tab's session for a
    reconnection and frees its files only when the session is shut down, which can be minutes later. A tab that
    reconnects keeps its widgets' state and asks for its files again."""
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    original = WebsocketSessionManager.disconnect_session
    if getattr(original, "guarded_by_access", False):
        return

    def disconnect_session(manager, session_id: str) -> None:
        original(manager, session_id)
        manager._uploaded_file_mgr.remove_session_files(session_id)

    disconnect_session.guarded_by_access = True
    WebsocketSessionManager.disconnect_session = disconnect_session


# ---- What pages call -------------------------------------------------------------------------------------------------


def _can_write(current: AccessPolicy) -> bool:
    if not current.read_only:
        return True
    return current.password_configured and st.session_state.get(UNLOCKED_KEY) is True


def can_write() -> bool:
    """True when this session may change things: read-only mode is off, or the session entered the admin password."""
    return _can_write(policy())


def read_only_note() -> str:
    """The one sentence each page shows about what read-only mode allows and how to leave it."""
    allowed = (
        f"Read-only mode: you can classify reviews (CSV batches up to {BATCH_ROW_CAP_READ_ONLY:,} rows), look at every "
        "page and download files that exist; training, stopping, deleting, exporting, quantizing, saving thresholds "
        "and stored uploads"
    )
    if policy().password_configured:
        return f"{allowed} need the admin password (in the sidebar)."
    return f"{allowed} are off on this server."


def read_only_note_ui() -> bool:
    """Draw read_only_note() when this session cannot write; returns can_write()."""
    if can_write():
        return True
    st.info(read_only_note(), icon=":material/lock:")
    return False


def refusal(action: str) -> str:
    """One line saying that read-only mode does not allow action (e.g. "starting a training"), and what it allows."""
    unlock = "; the admin password in the sidebar unlocks it" if policy().password_configured else ""
    return (
        f"Read-only mode does not allow {action}{unlock}. You can classify reviews (CSV batches up to "
        f"{BATCH_ROW_CAP_READ_ONLY:,} rows), look at every page and download files that exist."
    )


def require_write(action: str) -> bool:
    """True when this session may write; otherwise a warning saying so (refusal(action)) and False.

    Call it in the handler of each write, after the click: `if st.button(...) and access.require_write("exporting a
    run"): ...`, so the server refuses even a click on a button the page did not draw.
    """
    if can_write():
        return True
    st.warning(refusal(action), icon=":material/lock:")
    return False


def vocabulary_size_for(requested: int) -> int:
    """The vocabulary size this session may have the reviews encoded with: any, when it may write; else the default
    (every preset's), already encoded: another costs the server seconds of CPU and a cache file of tens of MB."""
    from core.config import ModelConfig

    return requested if can_write() else ModelConfig().vocabulary_size


def vocabulary_note(requested: int, used: int) -> str:
    """One line saying that read-only mode reads the reviews with used words, not the Build page's requested."""
    return (
        f"Read-only mode reads the reviews with the vocabulary of {used:,} words every preset uses, not the Build "
        f"page's {requested:,}: encoding the whole dataset again takes the server seconds of work and a cache file."
    )


def batch_row_cap() -> int | None:
    """Most rows this session may classify in one CSV batch: None (no cap) when it can write."""
    return None if can_write() else BATCH_ROW_CAP_READ_ONLY


def access_sidebar_ui() -> bool:
    """Draw in the sidebar whether this session can change things, and the password to unlock; returns can_write()."""
    current = policy()
    writable = _can_write(current)
    with st.sidebar:
        if current.problem:
            st.error(current.problem, icon=":material/error:")
        if writable:
            st.caption("This session can change things.")
            if current.read_only:
                # Unlocked with the password: offer the way back, e.g. before leaving a shared screen.
                st.button("Lock", key=LOCK_KEY, on_click=_lock, icon=":material/lock:")
            return True
        if current.password_configured:
            st.info(
                "Read-only: you can classify and look; enter the admin password to change things.",
                icon=":material/lock:",
            )
            st.text_input(
                "Admin password",
                type="password",
                key=PASSWORD_KEY,
                on_change=_attempt_unlock,
                autocomplete="off",
                max_chars=MAX_PASSWORD_CHARS,
            )
            st.button("Unlock", key=UNLOCK_KEY, on_click=_attempt_unlock, icon=":material/lock_open:")
            if st.session_state.pop(WRONG_PASSWORD_KEY, False):
                # One generic line: nothing about length, case or how close the attempt was.
                st.error("Wrong password.")
            wait = st.session_state.pop(WAIT_KEY, None)
            if wait is None and st.session_state.get(RETRY_AT_KEY, 0.0) > _now():
                wait = st.session_state[RETRY_AT_KEY] - _now()
            if wait is not None:
                st.warning(f"Too many attempts: the next one is read in {math.ceil(wait)} s.", icon=":material/timer:")
        else:
            st.info(
                "Read-only: you can classify and look; nothing can be changed on this server.", icon=":material/lock:"
            )
        st.caption(current.reason)
    return False


# ---- Names from the browser ------------------------------------------------------------------------------------------


def safe_choice(value: object, allowed: Iterable[Choice]) -> Choice | None:
    """The server's own entry of allowed equal to value (same type, equal), else None: a crafted name never passes."""
    for entry in allowed:
        if type(entry) is type(value) and entry == value:
            return entry
    return None


def download_name(text: str, suffix: str = "") -> str:
    """A download's file name made from user text: ASCII letters, digits and -_. only, no path, at most 100 characters.

    suffix is the server's own extension (".csv", ".int8.onnx"); anything else there is a bug and raises ValueError.
    """
    if not _SUFFIX.fullmatch(suffix) or len(suffix) > MAX_DOWNLOAD_NAME // 2:
        raise ValueError(f"download suffix {suffix!r} is not an extension like '.csv'")
    # Accents folded (é -> e) rather than dropped, then every other character, separators included, becomes '-'.
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE_NAME_CHARACTERS.sub("-", folded)
    stem = re.sub(r"\.{2,}", ".", stem)
    stem = re.sub(r"-{2,}", "-", stem)
    # No hidden file, nothing that reads as an option, no trailing dot (Windows drops it).
    stem = stem.strip(".-_")[: MAX_DOWNLOAD_NAME - len(suffix)].rstrip(".-_")
    return (stem or "download") + suffix
