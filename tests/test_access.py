"""dashboard/access.py: who may write (every combination of settings), the password check, the sidebar, safe names."""

import hmac
import itertools
import re
import unicodedata
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config as streamlit_config
from streamlit.runtime.secrets import Secrets
from streamlit.testing.v1 import AppTest

from dashboard import access

PASSWORD = "Kino-Abend für 2 🎬"  # non-ASCII on purpose: the check works on UTF-8 bytes
LOOPBACK = ["127.0.0.1", "127.0.1.1", "localhost", "LOCALHOST", "::1", "[::1]"]
# Every interface, other hosts' addresses, names that may resolve anywhere: all count as shared.
SHARED = ["0.0.0.0", "::", "", None, "192.168.1.20", "fe80::1", "example.org", "::ffff:127.0.0.1"]  # noqa: S104


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch, tmp_path):
    """No access setting from the developer's shell or home folder: each test sets what it needs."""
    monkeypatch.delenv(access.READ_ONLY_VARIABLE, raising=False)
    monkeypatch.delenv(access.PASSWORD_VARIABLE, raising=False)
    previous = streamlit_config.get_option("secrets.files")
    use_secrets_file(monkeypatch, tmp_path / "absent" / "secrets.toml")
    # The server-wide count of password attempts starts empty for each test.
    monkeypatch.setattr(access, "SERVER_ATTEMPTS_READ", access._AttemptWindow())
    yield
    streamlit_config.set_option("secrets.files", previous)


def use_secrets_file(monkeypatch, path: Path) -> None:
    """Streamlit reads its secrets from path only (which may not exist), through a fresh, unparsed Secrets."""
    streamlit_config.set_option("secrets.files", [str(path)])
    monkeypatch.setattr(st, "secrets", Secrets())


def listening_on(monkeypatch, address: str | None) -> None:
    """Make policy() see a server bound to address (server.address), leaving other options alone."""
    real = st.get_option
    monkeypatch.setattr(st, "get_option", lambda name: address if name == "server.address" else real(name))


# ---- The policy table ------------------------------------------------------------------------------------------------


# env read-only, secrets read_only, env password, secrets password, address -> read_only, password_configured
POLICY_TABLE = [
    # Nothing set: the listening address decides.
    (None, None, None, None, "127.0.0.1", False, False),
    (None, None, None, None, "0.0.0.0", True, False),  # noqa: S104
    (None, None, None, None, "", True, False),
    (None, None, None, None, None, True, False),
    # Read-only switched explicitly: the address no longer matters.
    ("0", None, None, None, "0.0.0.0", False, False),  # noqa: S104
    ("1", None, None, None, "127.0.0.1", True, False),
    (None, True, None, None, "127.0.0.1", True, False),
    (None, False, None, None, "", False, False),
    # The environment wins over the secrets.
    ("0", True, None, None, "127.0.0.1", False, False),
    ("1", False, None, None, "127.0.0.1", True, False),
    # A password always locks writes until it is entered, whatever the switch and the address.
    (None, None, "pw", None, "127.0.0.1", True, True),
    (None, None, None, "pw", "127.0.0.1", True, True),
    ("0", None, "pw", None, "127.0.0.1", True, True),
    (None, False, None, "pw", "0.0.0.0", True, True),  # noqa: S104
    ("1", None, "pw", None, "0.0.0.0", True, True),  # noqa: S104
    # Unreadable switches fail safe.
    ("maybe", None, None, None, "127.0.0.1", True, False),
    ("maybe", False, None, None, "127.0.0.1", True, False),
    (None, "sometimes", None, None, "127.0.0.1", True, False),
    ("2", None, "pw", None, "127.0.0.1", True, True),
    # Blank values are unset.
    ("  ", None, "", None, "127.0.0.1", False, False),
    (None, "", None, "   ", "0.0.0.0", True, False),  # noqa: S104
]


def _settings(env_switch, secret_switch, env_password, secret_password):
    environment = {}
    if env_switch is not None:
        environment[access.READ_ONLY_VARIABLE] = env_switch
    if env_password is not None:
        environment[access.PASSWORD_VARIABLE] = env_password
    secrets = {}
    if secret_switch is not None:
        secrets[access.READ_ONLY_SECRET] = secret_switch
    if secret_password is not None:
        secrets[access.PASSWORD_SECRET] = secret_password
    return environment, secrets


@pytest.mark.parametrize("row", POLICY_TABLE)
def test_policy_table(row):
    env_switch, secret_switch, env_password, secret_password, address, read_only, password_configured = row
    environment, secrets = _settings(env_switch, secret_switch, env_password, secret_password)
    decided = access.resolve_policy(environment, secrets, address)
    assert (decided.read_only, decided.password_configured) == (read_only, password_configured)
    assert decided.reason and "\n" not in decided.reason
    unreadable = env_switch == "maybe" or env_switch == "2" or (env_switch is None and secret_switch == "sometimes")
    assert (decided.problem is not None) == unreadable


def _expected(env_switch, secret_switch, env_password, secret_password, address):
    """The policy as the issue states it, written independently of the module."""
    switches = {"1": True, "true": True, "0": False, "false": False, True: True, False: False}
    raw = env_switch if env_switch is not None and str(env_switch).strip() else secret_switch
    unset = raw is None or (isinstance(raw, str) and not raw.strip())
    unreadable = not unset and raw not in switches
    password = bool((env_password or "").strip() or (secret_password or "").strip())
    loopback = (address or "").strip("[]").lower() in ("127.0.0.1", "localhost", "::1")
    if unreadable or password:
        return True, password, unreadable
    if not unset:
        return switches[raw], False, False
    return not loopback, False, False


def test_policy_every_combination_of_environment_secrets_and_address():
    combinations = itertools.product(
        [None, "1", "0", "true", "false", "maybe", ""],
        [None, True, False, "1", "0", "sometimes"],
        [None, "pw", ""],
        [None, "pw", ""],
        ["127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "", None, "192.168.1.20"],  # noqa: S104
    )
    checked = 0
    for env_switch, secret_switch, env_password, secret_password, address in combinations:
        environment, secrets = _settings(env_switch, secret_switch, env_password, secret_password)
        decided = access.resolve_policy(environment, secrets, address)
        read_only, password, unreadable = _expected(env_switch, secret_switch, env_password, secret_password, address)
        case = (env_switch, secret_switch, env_password, secret_password, address)
        assert (decided.read_only, decided.password_configured, decided.problem is not None) == (
            read_only,
            password,
            unreadable,
        ), case
        checked += 1
    assert checked == 7 * 6 * 3 * 3 * 8


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Yes", "on", " on ", "1\n"])
def test_read_only_values_that_mean_on(value):
    assert access.resolve_policy({access.READ_ONLY_VARIABLE: value}, {}, "127.0.0.1").read_only


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "NO", "off", " off "])
def test_read_only_values_that_mean_off(value):
    decided = access.resolve_policy({access.READ_ONLY_VARIABLE: value}, {}, "0.0.0.0")  # noqa: S104
    assert not decided.read_only and decided.problem is None


@pytest.mark.parametrize("value", ["maybe", "2", "-1", "truee", "y", "enabled", "1 0", "x" * 500])
def test_an_unreadable_read_only_value_is_one_line_and_read_only(value):
    decided = access.resolve_policy({access.READ_ONLY_VARIABLE: value}, {}, "127.0.0.1")
    assert decided.read_only
    assert decided.problem.count("\n") == 0 and access.READ_ONLY_VARIABLE in decided.problem
    assert "1 or 0" in decided.problem and len(decided.problem) < 300


@pytest.mark.parametrize("value", [1.5, [True], {"on": True}, 2])
def test_an_unreadable_secret_switch_is_read_only(value):
    decided = access.resolve_policy({}, {access.READ_ONLY_SECRET: value}, "127.0.0.1")
    assert decided.read_only and "read_only" in decided.problem


def test_a_password_that_is_not_text_in_the_secrets_fails_safe():
    decided = access.resolve_policy({}, {access.PASSWORD_SECRET: 1234}, "127.0.0.1")
    assert decided.read_only and not decided.password_configured
    assert "in quotes" in decided.problem


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_addresses(address):
    assert access.is_loopback(address)


@pytest.mark.parametrize("address", SHARED)
def test_every_other_address_counts_as_shared(address):
    assert not access.is_loopback(address)


def test_the_policy_never_holds_the_password():
    decided = access.resolve_policy({access.PASSWORD_VARIABLE: PASSWORD}, {}, "127.0.0.1")
    assert PASSWORD not in repr(decided)
    with pytest.raises(AttributeError):
        decided.read_only = False  # frozen


# ---- policy() reads the environment, the secrets file and the listening address --------------------------------------


def test_policy_reads_the_environment_and_the_address(monkeypatch):
    listening_on(monkeypatch, "127.0.0.1")
    assert access.policy() == access.resolve_policy({}, {}, "127.0.0.1")
    assert access.can_write()
    listening_on(monkeypatch, "")
    assert access.policy().read_only and not access.can_write()
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "0")
    assert access.can_write()
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    assert access.policy().password_configured and not access.can_write()


def test_policy_reads_the_secrets_file(monkeypatch, tmp_path):
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text('read_only = true\nadmin_password = "from the file"\n', encoding="utf-8")
    use_secrets_file(monkeypatch, secrets_file)
    listening_on(monkeypatch, "127.0.0.1")
    decided = access.policy()
    assert decided.read_only and decided.password_configured and decided.problem is None
    assert access.check_password("from the file")
    # The environment's password replaces the file's.
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    assert access.check_password(PASSWORD) and not access.check_password("from the file")


def test_a_missing_secrets_file_neither_raises_nor_warns(monkeypatch, capsys, caplog):
    listening_on(monkeypatch, "127.0.0.1")
    decided = access.policy()
    assert decided == access.resolve_policy({}, {}, "127.0.0.1")
    assert decided.problem is None
    captured = capsys.readouterr()
    assert "secrets" not in (captured.out + captured.err + caplog.text).lower()


def test_a_secrets_file_that_does_not_parse_fails_safe(monkeypatch, tmp_path):
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text("read_only = = maybe\n", encoding="utf-8")
    use_secrets_file(monkeypatch, secrets_file)
    listening_on(monkeypatch, "127.0.0.1")
    decided = access.policy()
    assert decided.read_only and "secrets" in decided.problem and "\n" not in decided.problem
    assert not access.can_write()


# ---- The password check ----------------------------------------------------------------------------------------------


def test_the_right_password_and_only_it(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    assert access.check_password(PASSWORD)
    for wrong in ["", " ", "wrong", PASSWORD.lower(), PASSWORD + " ", " " + PASSWORD, PASSWORD[:-1], PASSWORD * 2]:
        assert not access.check_password(wrong), repr(wrong)


def test_a_non_ascii_password_matches_in_either_unicode_form(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, unicodedata.normalize("NFC", "Crème brûlée 日本"))
    assert access.check_password(unicodedata.normalize("NFD", "Crème brûlée 日本"))
    assert not access.check_password("Creme brulee 日本")


def test_no_password_configured_unlocks_nothing():
    for candidate in ["", "anything", PASSWORD]:
        assert not access.check_password(candidate)


def test_the_password_is_compared_with_hmac_compare_digest_on_utf8_bytes(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    calls = []
    real = hmac.compare_digest

    def spy(left, right):
        calls.append((left, right))
        return real(left, right)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert access.check_password(PASSWORD)
    assert not access.check_password("wrong")
    assert len(calls) == 2
    assert all(isinstance(left, bytes) and isinstance(right, bytes) for left, right in calls)
    assert calls[0] == (PASSWORD.encode("utf-8"), PASSWORD.encode("utf-8"))
    # The answer is compare_digest's: nothing else decides.
    monkeypatch.setattr(hmac, "compare_digest", lambda left, right: False)
    assert not access.check_password(PASSWORD)


def test_the_module_never_compares_the_password_with_equals():
    source = Path(access.__file__).read_text(encoding="utf-8")
    body = source.split("def check_password", 1)[1].split("\ndef ", 1)[0]
    assert "hmac.compare_digest(" in body
    assert not re.search(r"(candidate|password)\w*\s*[!=]=", body)


# ---- The sidebar, through AppTest ------------------------------------------------------------------------------------


def _page():
    import streamlit as st

    from dashboard import access

    access.access_sidebar_ui()
    access.read_only_note_ui()
    if st.button("Delete the run", key="delete") and access.require_write("deleting a run"):
        st.success("Deleted.")
    st.write(f"cap: {access.batch_row_cap()}")


def _app(monkeypatch, address: str | None = "127.0.0.1") -> AppTest:
    listening_on(monkeypatch, address)
    return AppTest.from_function(_page, default_timeout=30).run()


def _page_text(at: AppTest) -> str:
    """Every element of the page, sidebar included, as its protobuf text."""
    return "\n".join(str(getattr(node, "proto", "")) for node in at._tree)


def _assert_password_nowhere(at: AppTest, password: str = PASSWORD) -> None:
    assert password not in _page_text(at)
    assert all(password not in str(value) for value in at.session_state.values())
    assert all(password not in str(at.session_state[key]) for key in at.session_state)


def test_on_this_machine_with_no_settings_everyone_can_write(monkeypatch):
    at = _app(monkeypatch)
    assert not at.exception
    assert [caption.value for caption in at.sidebar.caption] == ["This session can change things."]
    assert not at.text_input and not at.info and not at.error and not at.warning
    at.button(key="delete").click().run()
    assert [message.value for message in at.success] == ["Deleted."]
    assert "cap: None" in [markdown.value for markdown in at.markdown]


def test_shared_on_the_network_with_no_settings_is_read_only(monkeypatch):
    at = _app(monkeypatch, address="")
    assert "nothing can be changed" in at.sidebar.info[0].value
    assert not at.text_input  # no password to enter
    assert any("every network interface" in caption.value for caption in at.sidebar.caption)
    at.button(key="delete").click().run()
    assert not at.success
    assert f"cap: {access.BATCH_ROW_CAP_READ_ONLY}" in [markdown.value for markdown in at.markdown]


def test_a_locked_session_sees_the_password_field_and_is_refused(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    field = at.sidebar.text_input(key=access.PASSWORD_KEY)
    assert field.value == "" and field.proto.type == field.proto.PASSWORD
    assert "Admin password" in _page_text(at)  # the page text this file searches for passwords is the real one
    assert at.sidebar.button(key=access.UNLOCK_KEY).label == "Unlock"
    assert "Read-only: you can classify and look" in at.sidebar.info[0].value
    assert [note.value for note in at.main.info] == [access.read_only_note()]
    at.button(key="delete").click().run()
    assert not at.success
    [warning] = at.warning
    assert warning.value.startswith("Read-only mode does not allow deleting a run")
    assert "classify" in warning.value and "\n" not in warning.value


def test_a_wrong_password_gets_one_generic_error_and_the_field_is_cleared(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    attempt = PASSWORD[:-1]
    at.text_input(key=access.PASSWORD_KEY).input(attempt).run()
    assert [error.value for error in at.error] == ["Wrong password."]
    assert at.text_input(key=access.PASSWORD_KEY).value == ""
    assert at.session_state[access.PASSWORD_KEY] == ""
    assert at.session_state.get(access.UNLOCKED_KEY) is not True
    _assert_password_nowhere(at, attempt)
    _assert_password_nowhere(at)
    # The error belongs to that attempt only.
    at.run()
    assert not at.error
    at.button(key="delete").click().run()
    assert not at.success and at.warning


def test_the_right_password_unlocks_the_session_and_is_kept_nowhere(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    at.text_input(key=access.PASSWORD_KEY).input(PASSWORD).run()
    assert not at.error
    assert [caption.value for caption in at.sidebar.caption] == ["This session can change things."]
    assert not at.text_input  # the field is gone once unlocked
    assert at.session_state[access.UNLOCKED_KEY] is True
    _assert_password_nowhere(at)
    at.button(key="delete").click().run()
    assert [message.value for message in at.success] == ["Deleted."]
    assert not at.main.info  # no read-only note for an unlocked session
    # Lock drops back to read-only.
    at.sidebar.button(key=access.LOCK_KEY).click().run()
    assert at.session_state[access.UNLOCKED_KEY] is False
    assert at.text_input(key=access.PASSWORD_KEY).value == ""
    at.button(key="delete").click().run()
    assert not at.success and at.warning


def test_typing_the_password_then_pressing_unlock_unlocks_once_without_an_error(monkeypatch):
    # Both callbacks fire in one rerun (the field's change, then the button's click): the second sees an empty field.
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    at.text_input(key=access.PASSWORD_KEY).set_value(PASSWORD)
    at.button(key=access.UNLOCK_KEY).click().run()
    assert not at.error
    assert at.session_state[access.UNLOCKED_KEY] is True
    _assert_password_nowhere(at)


def test_pressing_unlock_with_an_empty_field_says_nothing(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    at.button(key=access.UNLOCK_KEY).click().run()
    assert not at.error and at.session_state.get(access.UNLOCKED_KEY) is not True


def test_read_only_without_a_password_cannot_be_unlocked_even_by_the_session_flag(monkeypatch):
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "1")
    at = _app(monkeypatch)
    assert not at.text_input
    assert "nothing can be changed" in at.sidebar.info[0].value
    at.session_state[access.UNLOCKED_KEY] = True
    at.button(key="delete").click().run()
    assert not at.success and at.warning
    assert "admin password" not in at.warning[0].value  # no password to point at


def test_an_unreadable_setting_is_one_error_line_in_the_sidebar(monkeypatch):
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "perhaps")
    at = _app(monkeypatch)
    [error] = at.sidebar.error
    assert access.READ_ONLY_VARIABLE in error.value and "\n" not in error.value
    assert not at.main.error
    at.button(key="delete").click().run()
    assert not at.success


def test_a_page_with_no_secrets_file_shows_no_secrets_warning(monkeypatch):
    at = _app(monkeypatch)
    assert "secrets" not in _page_text(at).lower()


# ---- require_write, read_only_note, refusal --------------------------------------------------------------------------


def test_require_write_returns_true_and_draws_nothing_when_allowed(monkeypatch):
    at = _app(monkeypatch)
    at.button(key="delete").click().run()
    assert at.success and not at.warning


def test_the_refusal_and_the_note_say_what_read_only_mode_allows(monkeypatch):
    listening_on(monkeypatch, "127.0.0.1")
    monkeypatch.setenv(access.READ_ONLY_VARIABLE, "1")
    line = access.refusal("starting a training")
    assert line.startswith("Read-only mode does not allow starting a training.")
    assert f"{access.BATCH_ROW_CAP_READ_ONLY:,} rows" in line and "\n" not in line
    assert "off on this server" in access.read_only_note()
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    assert "the admin password in the sidebar unlocks it" in access.refusal("starting a training")
    assert "need the admin password" in access.read_only_note()
    assert PASSWORD not in access.refusal("x") + access.read_only_note()


# ---- Names from the browser ------------------------------------------------------------------------------------------

CRAFTED = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\system32",
    "..\\..\\boot.ini",
    "a\x00b",
    "run\x00",
    "x" * 10_000,
    "..",
    ".",
    "",
    " ",
    "~/.ssh/id_rsa",
    "\u202eexe.txt",  # right-to-left override
    "名前",
    "-rf",
    ".hidden",
    "a/../../b",
    "%2e%2e%2f",
]


@pytest.mark.parametrize("crafted", CRAFTED + ["run-1/", " run-1", "run-1\x00", "RUN-1", "run-1/../run-2"])
def test_safe_choice_passes_only_the_servers_own_values(crafted):
    allowed = ["run-1", "run-2", "Shipped model (imdb_simplernn.onnx)"]
    assert access.safe_choice(crafted, allowed) is None


def test_safe_choice_returns_the_servers_own_object():
    allowed = ["run-1", "run-2"]
    chosen = access.safe_choice("".join(["run", "-2"]), allowed)
    assert chosen == "run-2" and chosen is allowed[1]
    assert access.safe_choice(1, ["1"]) is None and access.safe_choice(None, ["None"]) is None
    assert access.safe_choice("a", {"a": 1, "b": 2}) == "a"  # a dict offers its keys


@pytest.mark.parametrize("crafted", CRAFTED)
def test_download_names_from_crafted_text_stay_plain_file_names(crafted, tmp_path):
    name = access.download_name(crafted, ".csv")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.csv", name), name
    assert ".." not in name and "/" not in name and "\\" not in name and "\x00" not in name
    assert len(name) <= access.MAX_DOWNLOAD_NAME
    assert Path(name).name == name and (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_download_names_keep_what_is_safe():
    assert access.download_name("predictions-my reviews", ".csv") == "predictions-my-reviews.csv"
    assert access.download_name("Kritik über Filme", ".csv") == "Kritik-uber-Filme.csv"
    assert access.download_name("run_2024-01-01.v2", ".int8.onnx") == "run_2024-01-01.v2.int8.onnx"
    assert access.download_name("../x") == "x"
    assert access.download_name("", ".csv") == "download.csv"


@pytest.mark.parametrize("suffix", ["/x", "../.csv", ".c/sv", "csv", ".csv\x00", "." + "a" * 60])
def test_a_bad_suffix_is_a_bug_and_raises(suffix):
    with pytest.raises(ValueError, match="suffix"):
        access.download_name("name", suffix)


# ---- Guessing is slow, an unlock ends with its connection, caches are the writers' ------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """access._now under the test's control: a list holding the time."""
    now = [1000.0]
    monkeypatch.setattr(access, "_now", lambda: now[0])
    return now


def _try(at: AppTest, attempt: str) -> AppTest:
    return at.text_input(key=access.PASSWORD_KEY).input(attempt).run()


def test_wrong_passwords_past_three_make_the_session_wait_and_the_page_says_how_long(monkeypatch, clock):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    for _ in range(access.FREE_ATTEMPTS):
        _try(at, "wrong")
        assert [error.value for error in at.error] == ["Wrong password."] and not at.sidebar.warning
    _try(at, "wrong")  # the fourth: a wait of 2 s before the next is read
    assert [warning.value for warning in at.sidebar.warning] == ["Too many attempts: the next one is read in 2 s."]
    clock[0] += 1.0
    _try(at, PASSWORD)  # within the wait: not read, even the right password
    assert at.session_state.get(access.UNLOCKED_KEY) is not True and not at.error
    assert [warning.value for warning in at.sidebar.warning] == ["Too many attempts: the next one is read in 1 s."]
    clock[0] += 1.5
    _try(at, "wrong again")  # the fifth: 4 s
    assert [warning.value for warning in at.sidebar.warning] == ["Too many attempts: the next one is read in 4 s."]
    assert [access._session_wait(n) for n in range(1, 12)] == [0, 0, 0, 2, 4, 8, 16, 32, 60, 60, 60]
    clock[0] += 4.0
    _try(at, PASSWORD)
    assert at.session_state[access.UNLOCKED_KEY] is True and not at.sidebar.warning
    assert access.FAILURES_KEY not in at.session_state


def test_the_server_reads_twenty_attempts_a_minute_from_all_sessions_together(monkeypatch, clock):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    assert (access.SERVER_ATTEMPTS, access.SERVER_WINDOW_SECONDS) == (20, 60.0)
    monkeypatch.setattr(access, "SERVER_ATTEMPTS", 5)  # the same window, fewer sessions to open
    for _ in range(access.SERVER_ATTEMPTS):  # a new session for each guess costs an attacker nothing
        _try(_app(monkeypatch), "wrong")
    late = _try(_app(monkeypatch), PASSWORD)
    assert late.session_state.get(access.UNLOCKED_KEY) is not True
    assert [warning.value for warning in late.sidebar.warning] == ["Too many attempts: the next one is read in 60 s."]
    clock[0] += access.SERVER_WINDOW_SECONDS
    assert _try(late, PASSWORD).session_state[access.UNLOCKED_KEY] is True


def test_a_five_megabyte_guess_costs_a_comparison_of_256_characters_at_most(monkeypatch):
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    compared = []
    real = access.check_password
    monkeypatch.setattr(access, "check_password", lambda candidate: compared.append(len(candidate)) or real(candidate))
    at = _app(monkeypatch)
    at.session_state[access.PASSWORD_KEY] = "x" * 5_000_000  # past the field's max_chars, as a forged message sends it
    at.button(key=access.UNLOCK_KEY).click().run()
    # Streamlit cuts a value to the field's max_chars; past that, access compares nothing: 256 characters at most.
    assert [error.value for error in at.error] == ["Wrong password."] and compared in ([], [access.MAX_PASSWORD_CHARS])
    assert at.session_state[access.FAILURES_KEY] == 1
    _try(at, PASSWORD)
    assert at.session_state[access.UNLOCKED_KEY] is True and compared[-1] == len(PASSWORD)


def test_an_unlocked_session_cannot_be_resumed_by_another_connection(monkeypatch):
    marked = []
    monkeypatch.setattr(access, "_mark_nonresumable", marked.append)
    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    at = _app(monkeypatch)
    _try(at, "wrong")
    assert marked == []
    _try(at, PASSWORD)
    assert len(marked) == 1 and marked[0]


def test_only_a_session_that_may_write_clears_the_servers_caches(monkeypatch):
    from streamlit.runtime.app_session import AppSession

    monkeypatch.setattr(AppSession, "_handle_clear_cache_request", AppSession._handle_clear_cache_request)
    access.guard_cache_clearing()
    access.guard_cache_clearing()  # once: a second call does not wrap it again
    loads = []

    @st.cache_data
    def cached_value() -> int:
        loads.append(1)
        return 1

    class FakeSession:
        def __init__(self, unlocked: bool) -> None:
            self._session_state = {access.UNLOCKED_KEY: True} if unlocked else {}

    monkeypatch.setenv(access.PASSWORD_VARIABLE, PASSWORD)
    listening_on(monkeypatch, "0.0.0.0")  # noqa: S104  shared: read-only with a password
    cached_value()
    AppSession._handle_clear_cache_request(FakeSession(unlocked=False))
    cached_value()
    assert len(loads) == 1, "a read-only session's request left the caches alone"
    AppSession._handle_clear_cache_request(FakeSession(unlocked=True))
    cached_value()
    assert len(loads) == 2, "an unlocked session's request cleared them"
    listening_on(monkeypatch, "127.0.0.1")  # this machine, no settings but the password: read-only too
    monkeypatch.delenv(access.PASSWORD_VARIABLE)
    AppSession._handle_clear_cache_request(FakeSession(unlocked=False))
    cached_value()
    assert len(loads) == 3, "a local user who may write clears them"


def test_uploads_are_held_within_a_budget_for_each_session_and_for_the_server(monkeypatch):
    from starlette.exceptions import HTTPException
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    monkeypatch.setattr(MemoryUploadedFileManager, "add_file", MemoryUploadedFileManager.add_file)
    monkeypatch.setattr(WebsocketSessionManager, "disconnect_session", WebsocketSessionManager.disconnect_session)
    monkeypatch.setattr(access, "SESSION_UPLOAD_BYTES", 60 * 1024)  # the real budgets scaled down 1,024 times
    monkeypatch.setattr(access, "SERVER_UPLOAD_BYTES", 400 * 1024)
    access.guard_uploads()
    access.guard_uploads()  # once
    manager = MemoryUploadedFileManager("/_stcore/upload_file")

    def upload(session: str, file_id: str, kilobytes: int) -> None:
        manager.add_file(session, UploadedFileRec(file_id, "x.csv", "text/csv", b"x" * (kilobytes * 1024)))

    upload("a", "1", 50)
    upload("a", "1", 55)  # the same widget's file replaced: counted once
    with pytest.raises(HTTPException) as refused:
        upload("a", "2", 10)  # an upload no widget needs: past the session's budget
    assert refused.value.status_code == 413 and "this session's uploads would pass" in refused.value.detail
    for session in "bcdefg":
        upload(session, "1", 50)
    assert manager._total_bytes == (55 + 6 * 50) * 1024
    upload("h", "1", 45)  # 400 KB: full
    with pytest.raises(HTTPException) as refused:
        upload("i", "1", 1)
    assert "the server holds" in refused.value.detail
    with pytest.raises(HTTPException) as refused:
        manager.add_file("j", UploadedFileRec("1", "a\x00b.csv", "text/csv", b"text\n"))
    assert "control character" in refused.value.detail and not manager.get_files("j", ["1"])
    manager.remove_session_files("a")  # a session ends: its room is free again
    upload("i", "1", 50)
    assert manager._total_bytes <= access.SERVER_UPLOAD_BYTES
