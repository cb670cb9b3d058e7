"""How an error reads to a user: one line, whatever the exception held."""

from __future__ import annotations


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def one_line(error: BaseException) -> str:
    """An exception's whole message folded onto one line, for a message that quotes it."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def user_message(error: BaseException) -> str:
    """One line for a user: an OSError as "path: reason", anything else as the first line of its message."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror[0].lower()}{error.strerror[1:]}"
    return first_line(error)


def reason(error: BaseException) -> str:
    """Why an error happened, to follow a message that names the path itself: an OSError's reason ("No space left on
    device"), anything else as the first line of its message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return first_line(error)
