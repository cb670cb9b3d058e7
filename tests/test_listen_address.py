"""The default server listens on 127.0.0.1 only, as the socket table shows (tests connect to loopback only)."""

import ipaddress
from pathlib import Path

import pytest

from tests.browser_support import StreamlitServer

LISTEN = "0A"  # the TCP state number of a listening socket in /proc/net/tcp and tcp6


def _address(hex_address: str) -> str:
    # The kernel prints each 32-bit word of the address in host byte order (little-endian here).
    words = [bytes.fromhex(hex_address[start : start + 8])[::-1] for start in range(0, len(hex_address), 8)]
    return str(ipaddress.ip_address(b"".join(words)))


def listening_addresses(port: int) -> set[str]:
    """Every local address with a socket listening on port, IPv4 and IPv6, from /proc/net/tcp and /proc/net/tcp6."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, port_hex = local.rsplit(":", 1)
            if state == LISTEN and int(port_hex, 16) == port:
                found.add(_address(address))
    return found


def test_the_socket_table_is_read_right():
    assert _address("0100007F") == "127.0.0.1"
    assert _address("00000000") == "0.0.0.0"  # noqa: S104 - a value parsed, nothing bound
    assert _address("00000000000000000000000001000000") == "::1"
    assert _address("00000000000000000000000000000000") == "::"


@pytest.mark.slow
def test_the_default_server_listens_on_loopback_only(tmp_path):
    # No --server.address: the address comes from the repository's .streamlit/config.toml, as in make run.
    server = StreamlitServer({}, tmp_path / "streamlit.log", address=None)
    try:
        server.wait_healthy()
        addresses = listening_addresses(server.port)
    finally:
        server.stop()
    assert "--server.address" not in server.process.args
    assert addresses == {"127.0.0.1"}, f"listening on {sorted(addresses)}"
    assert "Network URL" not in server.log_path.read_text(errors="replace")
