"""The database helpers that need no server: the bounded check of a kept connection."""

from __future__ import annotations

import pytest

from pandafacility.db import ping


class Conn:
    """What ping uses of a PyMySQL connection: its per-read/write timeouts and ping."""

    def __init__(self, fails: bool = False) -> None:
        self._read_timeout, self._write_timeout = 10.0, 11.0
        self.fails, self.seen = fails, None

    def ping(self, reconnect: bool) -> None:
        assert reconnect is False  # a broken connection is replaced, not revived
        self.seen = (self._read_timeout, self._write_timeout)
        if self.fails:
            raise OSError("timed out")


def test_ping_is_bounded_then_the_timeouts_are_back():
    conn = Conn()
    ping(conn, 2.0)
    assert conn.seen == (2.0, 2.0)
    assert (conn._read_timeout, conn._write_timeout) == (10.0, 11.0)


def test_a_ping_that_fails_raises_and_restores_the_timeouts():
    conn = Conn(fails=True)
    with pytest.raises(OSError):
        ping(conn, 2.0)
    assert (conn._read_timeout, conn._write_timeout) == (10.0, 11.0)
