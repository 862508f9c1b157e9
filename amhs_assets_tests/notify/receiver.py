"""Real local HTTP receivers for webhook tests (no tests here): one that records what it gets
and answers scripted statuses, one that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook receiver on a free loopback port: every POST's JSON body in `messages` (those
    answered 2xx) and `tries` (all), answers taken from `statuses` in turn, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.messages: list[dict] = []
        self.tries: list[float] = []  # monotonic time of each POST
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.tries.append(time.monotonic())
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status < 300:
                        receiver.messages.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def kinds(self, kind: str, event: str | None = None) -> list[dict]:
        """The received messages of a kind (and event)."""
        with self.lock:
            return [m for m in self.messages
                    if m["kind"] == kind and (event is None or m["event"] == event)]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict]:
        """Every received message once there are at least `count` (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)


@contextlib.contextmanager
def receiving(statuses: tuple[int, ...] = ()) -> Iterator[Receiver]:
    """A running Receiver, stopped at the end."""
    receiver = Receiver(statuses)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@contextlib.contextmanager
def silent_receiver() -> Iterator[str]:
    """The URL of a socket that completes connections (the kernel's backlog) and never
    answers: a receiver that hangs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/hook"
