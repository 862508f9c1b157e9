"""What one client may cost a worker: the body's size and read time, and how many predictions
run at once (`Admission`). The structure of a body is checked in `shape`, the header limits in
`protocol`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anyio
from starlette.requests import ClientDisconnect, Request

from amhs_assets.serve.validation import RequestError

JSON = "application/json"
DRAIN_FACTOR = 2  # an oversized body is read (and dropped) up to this many times the limit
CLOSE = {"Connection": "close"}


class Admission:
    """At most `limit` requests at once in this worker; one more is refused at once (503 with
    Retry-After) rather than queued without end. Used from the event loop only."""

    def __init__(self, limit: int, retry_after_s: int = 1) -> None:
        self.limit, self.retry_after_s, self.busy = limit, retry_after_s, 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one place while the request is read and answered."""
        if self.busy >= self.limit:
            raise RequestError(503, f"busy: {self.limit} predictions in progress in this worker "
                                    f"(AMHS_MAX_IN_FLIGHT); retry in {self.retry_after_s} s",
                               headers={"Retry-After": str(self.retry_after_s)})
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


def _too_big(limit: int, close: bool) -> RequestError:
    return RequestError(413, f"request body over {limit} bytes (AMHS_MAX_BODY_BYTES); send "
                             "fewer rows per request", headers=CLOSE if close else None)


async def read_body(request: Request, limit: int, timeout_s: float = 0) -> bytes:
    """The JSON body: 415 when it is not JSON; 413 past `limit` bytes (by Content-Length, then
    while reading); 408 when it takes over `timeout_s` (0: no deadline).

    An oversized body is read to its end and dropped (up to DRAIN_FACTOR x limit, within the
    deadline) before the 413 goes out, so that the client, still sending, reads the answer
    instead of a reset connection; past that the answer closes the connection."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != JSON and not kind.endswith("+json"):
        raise RequestError(415, f"Content-Type must be {JSON} (got {kind or 'none'})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        waiting = request.headers.get("expect", "").lower() == "100-continue"
        if waiting or int(declared) > DRAIN_FACTOR * limit:  # nothing sent yet, or too much
            raise _too_big(limit, close=True)
    chunks, size = [], 0
    try:
        with anyio.fail_after(timeout_s or None):
            async for chunk in request.stream():
                size += len(chunk)
                if size > DRAIN_FACTOR * limit:
                    raise _too_big(limit, close=True)
                if size > limit:
                    chunks.clear()  # drop it, read on to the end
                    continue
                chunks.append(chunk)
    except TimeoutError:
        if size > limit:
            raise _too_big(limit, close=True) from None
        raise RequestError(408, f"the body did not arrive within {timeout_s:g} s "
                                "(AMHS_BODY_TIMEOUT_S)", headers=CLOSE) from None
    except ClientDisconnect:
        raise RequestError(400, "the client went away before the body was complete") from None
    if size > limit:
        raise _too_big(limit, close=False)
    return b"".join(chunks)
