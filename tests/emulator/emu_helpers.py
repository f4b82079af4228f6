"""Shared helpers of the emulator tests: names, condition waits and a scriptable HTTP worker."""
from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LOCATION = "projects/test-project/locations/us-central1"
QUEUE = f"{LOCATION}/queues/default"


def task_gone(client: Any, name: str) -> bool:
    """True once GetTask answers NOT_FOUND: the task ran to completion or was deleted."""
    from google.api_core import exceptions

    try:
        client.get_task(name=name)
    except exceptions.NotFound:
        return True
    return False


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "condition") -> Any:
    """Poll ``predicate`` until truthy (tests synchronise on state, never on fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.01)


@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    received: float  # time.monotonic()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Action:
    """What the worker answers: a status (with headers), after ``delay`` seconds; or misbehaves:
    ``hang`` (never answers until released), ``reset`` (drops the connection), ``garbage``."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "status"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops concurrent connects (1 s SYN retry)


def self_signed_context() -> ssl.SSLContext:
    """A server TLS context with a throwaway certificate for 127.0.0.1 (the emulator does not
    verify certificates of loopback targets; tokens are only ever sent to https:// URLs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    directory = tempfile.mkdtemp(prefix="worker-tls-")
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


class Worker:
    def __init__(self, tls: bool = False) -> None:
        self.requests: list[Recorded] = []
        self.script: list[Action] = []  # consumed in order; then ``default`` answers
        self.default = Action()
        self.release = threading.Event()
        self.active = 0  # requests being handled right now
        self.max_active = 0
        self._cond = threading.Condition()
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with worker._cond:
                    worker.requests.append(Recorded(self.command, self.path, list(self.headers.items()), body,
                                                    time.monotonic()))
                    action = worker.script.pop(0) if worker.script else worker.default
                    worker.active += 1
                    worker.max_active = max(worker.max_active, worker.active)
                    worker._cond.notify_all()
                try:
                    self._answer(action)
                finally:
                    with worker._cond:
                        worker.active -= 1

            def _answer(self, action: Action) -> None:
                if action.kind == "hang":
                    worker.release.wait(30)
                    self.close_connection = True
                    return
                if action.kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    return
                if action.kind == "garbage":
                    self.wfile.write(b"this is not HTTP\r\n\r\n")
                    self.close_connection = True
                    return
                if action.delay:
                    time.sleep(action.delay)
                self.send_response(action.status)
                for key, value in action.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls:
            self.server.socket = self_signed_context().wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"worker got {len(self.requests)} requests, expected {count}")
                self._cond.wait(left)
            return list(self.requests)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
