"""The suite-wide guard that keeps tests on this machine."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.unit


def test_non_loopback_connections_are_refused_before_any_packet() -> None:
    # 0.0.0.0 would reach this machine if the guard let it through, so the check itself sends nothing out.
    with pytest.raises(ConnectionRefusedError, match=r"may only talk to 127\.0\.0\.1"):
        socket.create_connection(("0.0.0.0", 9), timeout=1)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
