"""One way to turn an exception into one line for people (core.errors)."""

from __future__ import annotations

import errno

from core.errors import first_line, one_line, reason, user_message


def test_the_first_line_or_the_type_name_when_there_is_no_message():
    assert first_line(ValueError("bad value\n  at line 3")) == "bad value"
    assert first_line(ValueError("  ")) == "ValueError"


def test_one_line_folds_the_whole_message():
    assert one_line(ValueError("bad\n  value")) == "bad value"
    assert one_line(KeyError()) == "KeyError"


def test_an_os_error_reads_as_path_and_reason_or_reason_alone():
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x")
    assert user_message(full) == "/runs/x: no space left on device"
    assert reason(full) == "No space left on device"
    assert reason(OSError("disk gone\ndetails")) == "disk gone"
    assert reason(ValueError("")) == "ValueError"
    assert user_message(ValueError("first\nsecond")) == "first"
