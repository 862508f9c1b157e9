"""uvicorn's httptools protocol with limits on the request head: `GuardedHttpToolsProtocol`.

uvicorn times out idle keep-alive connections only, and its httptools parser takes headers of
any size: a client that opens a connection and sends its headers a byte at a time holds it for
ever. Here the head (request line and headers) must be complete within AMHS_HEADER_TIMEOUT_S of
the connection (or of the previous answer) and within AMHS_MAX_HEADER_BYTES; otherwise the
client gets a 408 or 431 and the connection is closed. The body's deadline is the app's
(`limits.read_body`).
"""

from __future__ import annotations

import asyncio
import functools
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from amhs_assets.serve.config import ServeSettings

log = logging.getLogger(__name__)
SPEC = "amhs_assets.serve.protocol:GuardedHttpToolsProtocol"  # uvicorn's `http` option


@functools.cache
def head_limits() -> tuple[float, int]:
    """(header timeout in s, most header bytes), read once per process from the environment."""
    settings = ServeSettings.from_env()
    return settings.header_timeout_s, settings.max_header_bytes


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A deadline and a size limit on each request's head; everything else is uvicorn's."""

    _head_timer: asyncio.TimerHandle | None = None
    _in_head = False  # between the first byte of a request and the end of its headers
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head:
            self._head_bytes += len(data)
            limit = head_limits()[1]
            if limit and self._head_bytes > limit:
                self._refuse("431 Request Header Fields Too Large",
                             f"request line and headers over {limit} bytes (AMHS_MAX_HEADER_BYTES)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection

    def _arm(self) -> None:
        self._disarm()
        timeout = head_limits()[0]
        if timeout:
            self._head_timer = self.loop.call_later(timeout, self._head_timeout, timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self, timeout: float) -> None:
        """No complete head in time: 408 to a client sending one, a silent close otherwise (an
        idle connection, or the rest of a body already answered)."""
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a (pipelined) request is being answered
        self._refuse("408 Request Timeout",
                     f"no complete request head within {timeout:g} s (AMHS_HEADER_TIMEOUT_S)",
                     quiet=not self._in_head)

    def _refuse(self, status: str, text: str, quiet: bool = False) -> None:
        """Answer (unless quiet) and close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        if not quiet:
            log.info("%s from %s: %s", status, self.client, text)
            self.transport.write(_answer(status, text))
        self.transport.close()
