"""The HTTP side of the emulator: REST API, OIDC discovery + JWKS, fault admin, status page.

Stdlib ``ThreadingHTTPServer`` on a background thread: no extra dependency, one daemon thread per
connection (keep-alive, like the official REST transport's session), and nothing here can take the
process down — every handler path ends in a JSON answer. Logs carry method, path and status only:
never query strings, header values (Authorization) or bodies, since those may hold secrets.
"""
from __future__ import annotations

import html
import ipaddress
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc

from .core.faults import FaultInjector
from .core.oidc import DISCOVERY_PATH, JWKS_PATH, OidcSigner
from .rest_api import MAX_BODY_BYTES, RestApi, RestResponse, Service, error_response

log = logging.getLogger("cloudtasks_emulator.http")

FAULTS_PATH = "/_emulator/faults"
STATUS_PATH = "/_emulator/status"
_READ_TIMEOUT_SECONDS = 30.0  # a client that stalls mid-body loses its connection, not a thread forever


def _is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> RestResponse:
    return RestResponse(status, body, headers or {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudtasks-emulator"
    sys_version = ""
    timeout = _READ_TIMEOUT_SECONDS
    app: "HttpServer"  # set on the per-server subclass

    # --- plumbing -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib answers protocol errors (bad request line, unknown verb, URI too long) with an
        # HTML page; clients of a Google API expect the JSON error body everywhere.
        self.log_error("protocol error %d", code)
        self.close_connection = True
        # The stdlib leaves request_version at HTTP/0.9 until the request line parses, which would
        # make the answer a bare body; nobody speaks 0.9 any more, so always send a status line.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        status = {400: grpc.StatusCode.INVALID_ARGUMENT, 501: grpc.StatusCode.UNIMPLEMENTED}.get(
            code, grpc.StatusCode.INVALID_ARGUMENT if code < 500 else grpc.StatusCode.INTERNAL)
        try:
            self._write("GET" if self.command != "HEAD" else "HEAD",
                        error_response(status, message or "Bad request.", http_status=code))
        except Exception:
            pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _serve logs each request itself, without the query string

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Only reached through log_error, for protocol errors (e.g. a malformed request line) whose
        # text may echo the raw request: log the client address and nothing of the content.
        log.debug("http protocol error from %s", self.client_address[0])

    def _read_body(self) -> bytes | RestResponse:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, "Chunked request bodies are not supported; "
                                  "send Content-Length.", http_status=411)
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, "Invalid Content-Length header.")
        if length > MAX_BODY_BYTES:
            # Do not read it: answer and drop the connection so the rest of the upload is discarded.
            self.close_connection = True
            return error_response(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes.", http_status=413,
            )
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, "Request body shorter than Content-Length.")
        return data

    def _serve(self, verb: str) -> None:
        started = time.monotonic()
        status = 500
        try:
            body = self._read_body()
            if isinstance(body, RestResponse):
                response: RestResponse | tuple[int, str, bytes] = body
            else:
                response = self.app.dispatch(verb, self.path, body, self.client_address[0],
                                             self.headers.get("Accept", ""))
            status = self._write(verb, response)
        except (ConnectionError, socket.timeout, TimeoutError):
            self.close_connection = True
        except Exception:  # never let one request kill the serving thread without an answer
            log.exception("unexpected error serving %s %s", verb, urlsplit(self.path).path)
            self.close_connection = True
            try:
                status = self._write(verb, error_response(grpc.StatusCode.INTERNAL, "Internal error encountered."))
            except Exception:
                pass
        finally:
            log.info("%s %s %s %.1fms", verb, urlsplit(self.path).path, status,
                     (time.monotonic() - started) * 1000)

    def _write(self, verb: str, response: RestResponse | tuple[int, str, bytes]) -> int:
        if isinstance(response, RestResponse):
            status, ctype, payload, extra = (response.status, "application/json; charset=UTF-8",
                                             response.json_bytes(), response.headers)
        else:
            (status, ctype, payload), extra = response, {}
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for key, value in extra.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if verb != "HEAD":
            self.wfile.write(payload)
        return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class HttpServer:
    """REST + OIDC + admin on one port; ``start()`` binds (port 0 = pick a free one) and serves."""

    def __init__(self, service: Service, host: str, port: int, oidc: OidcSigner,
                 faults: FaultInjector | None = None) -> None:
        self.service = service
        self.host = host
        self._requested_port = port
        self.oidc = oidc
        self.faults = faults
        self.rest = RestApi(service)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None  # kept after stop() so logs and tests can still name it

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "HttpServer":
        handler = type("Handler", (_Handler,), {"app": self})
        server_cls = _Server
        if ":" in self.host:
            server_cls = type("Server6", (_Server,), {"address_family": socket.AF_INET6})
        self._server = server_cls((self.host, self._requested_port), handler)
        self._port = int(self._server.server_address[1])
        # Tokens must name an issuer a worker can reach and fetch the discovery document from.
        self.oidc.issuer = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="cloudtasks-emulator-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("HttpServer not started")
        return self._port

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # --- routing --------------------------------------------------------------------------------
    def dispatch(self, verb: str, target: str, body: bytes, client_host: str,
                 accept: str) -> RestResponse | tuple[int, str, bytes]:
        path = urlsplit(target).path
        if path == DISCOVERY_PATH:
            return self._get_only(verb, lambda: self.oidc.openid_configuration())
        if path == JWKS_PATH:
            return self._get_only(verb, lambda: self.oidc.jwks())
        if path == FAULTS_PATH:
            if not _is_loopback(client_host):
                return error_response(grpc.StatusCode.PERMISSION_DENIED,
                                      "The fault admin endpoint only answers loopback clients.")
            return self._faults(verb, body)
        if path in (STATUS_PATH, "/"):
            if verb not in ("GET", "HEAD"):
                return error_response(grpc.StatusCode.UNIMPLEMENTED, f"Method {verb} is not allowed.",
                                      {"Allow": "GET"}, http_status=405)
            query = parse_qs(urlsplit(target).query)
            as_json = "json" in query.get("format", []) or ("application/json" in accept and "text/html" not in accept)
            return self._status(as_json)
        return self.rest.handle(verb if verb != "HEAD" else "GET", target, body)

    @staticmethod
    def _get_only(verb: str, produce: Any) -> RestResponse:
        if verb not in ("GET", "HEAD"):
            return error_response(grpc.StatusCode.UNIMPLEMENTED, f"Method {verb} is not allowed.",
                                  {"Allow": "GET"}, http_status=405)
        return _json_response(200, produce())

    def _faults(self, verb: str, body: bytes) -> RestResponse:
        if verb == "GET":
            if self.faults is None:
                return _json_response(200, {"enabled": False, "available": False, "rules": {}, "counters": {}})
            return _json_response(200, self.faults.snapshot())
        if verb not in ("PUT", "DELETE"):
            return error_response(grpc.StatusCode.UNIMPLEMENTED, f"Method {verb} is not allowed.",
                                  {"Allow": "GET, PUT, DELETE"}, http_status=405)
        if self.faults is None:
            return error_response(grpc.StatusCode.UNIMPLEMENTED, "Fault injection is not wired into this emulator.")
        if verb == "DELETE":
            self.faults.clear()
            return _json_response(200, self.faults.snapshot())
        try:
            doc = json.loads(body.decode("utf-8") or "{}")
            self.faults.configure_json(doc)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid fault configuration: {exc}")
        return _json_response(200, self.faults.snapshot())

    def _status(self, as_json: bool) -> RestResponse | tuple[int, str, bytes]:
        snapshot = self.status_snapshot()
        if as_json:
            return _json_response(200, snapshot)
        rows = "".join(
            f"<tr><td>{html.escape(q['name'])}</td><td>{html.escape(q['state'])}</td><td>{q['tasks']}</td></tr>"
            for q in snapshot["queues"]
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Cloud Tasks emulator</title></head><body>"
            f"<h1>Cloud Tasks emulator</h1><p>REST at {html.escape(self.url)}/v2 · OIDC issuer "
            f"{html.escape(self.oidc.issuer)} · faults {'on' if snapshot['faults']['enabled'] else 'off'}</p>"
            f"<table border='1'><tr><th>Queue</th><th>State</th><th>Tasks</th></tr>{rows}</table>"
            "</body></html>"
        )
        return 200, "text/html; charset=UTF-8", page.encode("utf-8")

    def status_snapshot(self) -> dict[str, Any]:
        """Queues and task counts. The API has no 'all projects' listing, so this asks the service's
        ``status()`` when it has one, else reads its store; a failure shows no queues, not a 500."""
        queues: list[dict[str, Any]] = []
        try:
            provider = getattr(self.service, "status", None)
            if callable(provider):
                raw = list(provider().get("queues", []))
            else:
                raw = _queues_from_store(getattr(self.service, "store", None))
            for q in raw:
                queues.append({"name": str(q.get("name", "")), "state": str(q.get("state", "")),
                               "tasks": int(q.get("tasks", 0))})
        except Exception:
            log.exception("status page: could not read queues")
        faults = self.faults.snapshot() if self.faults is not None else {"enabled": False}
        return {"url": self.url, "issuer": self.oidc.issuer, "queues": queues, "faults": faults}


_STATUS_COUNT_CAP = 100_000  # the page must stay cheap even with a huge backlog


def _queues_from_store(store: Any) -> list[dict[str, Any]]:
    if store is None or not hasattr(store, "all_queues"):
        return []
    out = []
    for queue in store.all_queues():
        count, after = 0, ""
        while count < _STATUS_COUNT_CAP:
            page = store.list_tasks(queue.name, after, 1000)
            count += len(page)
            if len(page) < 1000:
                break
            after = page[-1].name
        state = queue.DESCRIPTOR.fields_by_name["state"].enum_type.values_by_number[queue.state].name
        out.append({"name": queue.name, "state": state, "tasks": count})
    return out
