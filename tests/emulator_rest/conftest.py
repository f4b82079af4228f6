"""Fixtures: the REST adapter over a fake service (adapter-only tests), the real emulator, a worker."""
from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from cloudtasks_emulator.core.faults import FaultInjector
from cloudtasks_emulator.core.oidc import OidcSigner
from cloudtasks_emulator.http_server import HttpServer

from .fake_service import FakeService


@pytest.fixture
def fake_http() -> Iterator[tuple[HttpServer, FakeService]]:
    faults = FaultInjector()
    service = FakeService(faults)
    server = HttpServer(service, "127.0.0.1", 0, OidcSigner(None), faults).start()
    try:
        yield server, service
    finally:
        server.stop()


@pytest.fixture(scope="module")
def emulator():
    """The real emulator (gRPC + REST + dispatcher). No fallback: if it cannot start, tests fail."""
    from cloudtasks_emulator.testing import run_emulator

    with run_emulator() as emu:
        yield emu


@pytest.fixture
def queue_parent() -> str:
    return f"projects/rest-{uuid.uuid4().hex[:8]}/locations/us-central1"


class Worker:
    """A local HTTP target that answers 200 and records what it received."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                length = int(self.headers.get("Content-Length") or 0)
                worker.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": self.rfile.read(length)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/work"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    try:
        yield w
    finally:
        w.stop()
