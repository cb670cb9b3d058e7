"""A Streamlit session spoken over the server's websocket, as a hostile script would: no browser, raw messages."""

from __future__ import annotations

import time

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

PLACEHOLDER_TOKEN = "placeholder"  # the subprotocol's second entry: an XSRF token, needed only for signed-in users


class RawSession:
    """One connection to a real server's /_stcore/stream; resume names an earlier session's id to reattach to."""

    def __init__(self, port: int, resume: str | None = None) -> None:
        protocols = ["streamlit", PLACEHOLDER_TOKEN] + ([resume] if resume else [])
        self.socket = connect(
            f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=protocols, max_size=None, open_timeout=30
        )
        self.session_id: str | None = None
        self.elements: list = []  # the last run's elements (protobuf Element messages)

    def send(self, message: BackMsg) -> None:
        self.socket.send(message.SerializeToString())

    def run(self, widgets: dict[str, str] | None = None, timeout: float = 60.0) -> RawSession:
        """A rerun with these text widget values (id -> value), read until the script finishes."""
        message = BackMsg()
        message.rerun_script.query_string = ""
        message.rerun_script.page_script_hash = ""
        for widget_id, value in (widgets or {}).items():
            state = message.rerun_script.widget_states.widgets.add()
            state.id = widget_id
            state.string_value = value
        self.send(message)
        self.elements = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = ForwardMsg()
            reply.ParseFromString(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            kind = reply.WhichOneof("type")
            if kind == "new_session":
                self.session_id = reply.new_session.initialize.session_id
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                self.elements.append(reply.delta.new_element)
            elif kind == "script_finished":
                return self
        raise TimeoutError("the script did not finish")

    def texts(self) -> list[str]:
        """The text of every markdown, caption and alert element of the last run."""
        found = []
        for element in self.elements:
            kind = element.WhichOneof("type")
            if kind == "markdown":
                found.append(element.markdown.body)
            elif kind == "alert":
                found.append(element.alert.body)
        return found

    def widget_id(self, label: str) -> str:
        """The id of the last run's text input with this label."""
        for element in self.elements:
            if element.WhichOneof("type") == "text_input" and element.text_input.label == label:
                return element.text_input.id
        raise LookupError(f"no text input labelled {label!r}")

    def clear_caches(self) -> None:
        message = BackMsg()
        message.clear_cache = True
        self.send(message)

    def close(self) -> None:
        self.socket.close()
