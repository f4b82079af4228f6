"""One dispatch attempt: the HTTP request Cloud Tasks would send for a task, and what came back.

Uses http.client directly: redirects are never followed (a 3xx is a failed attempt, as in the real
service) and the task's dispatch_deadline is the socket timeout.
"""
from __future__ import annotations

import http.client
import ipaddress
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from . import messages as m
from . import rules
from .store import Claim

log = logging.getLogger("cloudtasks_emulator.dispatch")

HTTP_USER_AGENT = "Google-Cloud-Tasks"
# Google's canonical mapping from HTTP status to google.rpc.Code, as seen in Attempt.response_status.
_STATUS_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 412: 9, 416: 11, 429: 8, 499: 1, 501: 12, 503: 14, 504: 4}
_CODE_NAMES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
               7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED",
               11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED"}
_MAX_RESPONSE_BYTES = 1 << 20  # read (and discard) at most this much of a worker's answer


@dataclass
class Prepared:
    url: str
    method: str
    headers: list[tuple[str, str]]
    body: bytes
    timeout: float


@dataclass
class Outcome:
    status: int | None = None  # HTTP status; None when no (valid) response arrived
    timed_out: bool = False
    retry_after: float | None = None
    error: str = ""

    @property
    def success(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def rpc_status(self) -> tuple[int, str]:
        """(google.rpc code, message) for Attempt.response_status."""
        if self.timed_out:
            return 4, "DEADLINE_EXCEEDED(4): The request to the target exceeded the task's dispatch deadline."
        if self.status is None:
            return 14, f"UNAVAILABLE(14): The target could not be reached: {self.error}"
        code = _STATUS_CODES.get(self.status) or (13 if self.status >= 500 else 9 if self.status >= 400 else 2)
        return code, f"{_CODE_NAMES[code]}({code}): HTTP status code {self.status}"


class Authorizer:
    """Bearer tokens for HTTP targets: OIDC ID tokens from the signer, opaque OAuth access tokens."""

    def __init__(self, oidc: Any | None) -> None:
        self.oidc = oidc

    def header(self, http_request: Any) -> str | None:
        if http_request.HasField("oidc_token"):
            if self.oidc is None:
                log.warning("no OIDC signer available: task sent without an Authorization header")
                return None
            token = http_request.oidc_token
            return "Bearer " + self.oidc.sign_id_token(token.service_account_email, token.audience or http_request.url)
        if http_request.HasField("oauth_token"):
            return "Bearer emulator-oauth-" + secrets.token_urlsafe(24)
        return None


def prepare(claim: Claim, authorizer: Authorizer, app_engine_url: str) -> Prepared:
    task = claim.task
    retry_count = task.dispatch_count - 1
    eta = f"{m.epoch(task.schedule_time):.6f}"
    queue_id, task_id = rules.short_id(claim.queue), rules.short_id(task.name)
    if task.HasField("http_request"):
        req = task.http_request
        auth = authorizer.header(req)
        headers = [(k, v) for k, v in req.headers.items()
                   if not (k.lower() == "user-agent" or (auth and k.lower() == "authorization"))]
        prefix = "X-CloudTasks-"
        url, host = req.url, urlsplit(req.url).netloc
        headers.append(("User-Agent", HTTP_USER_AGENT))
        if auth:
            headers.append(("Authorization", auth))
        timeout = m.seconds(task.dispatch_deadline) or rules.HTTP_DEADLINE_DEFAULT_SECONDS
        body_allowed = rules.body_allowed(m.HttpMethod.Name(req.http_method), app_engine=False)
    else:
        req = task.app_engine_http_request
        headers = [(k, v) for k, v in req.headers.items() if k.lower() != "content-length"]
        prefix = "X-AppEngine-"
        url, host = app_engine_url.rstrip("/") + req.relative_uri, req.app_engine_routing.host
        # App Engine's default deadline depends on scaling; 10 minutes is the automatic-scaling one.
        timeout = m.seconds(task.dispatch_deadline) or 600.0
        body_allowed = rules.body_allowed(m.HttpMethod.Name(req.http_method), app_engine=True)
    headers = [("Host", host)] + headers + [
        (prefix + "QueueName", queue_id), (prefix + "TaskName", task_id),
        (prefix + "TaskRetryCount", str(retry_count)), (prefix + "TaskExecutionCount", str(claim.exec_count)),
        (prefix + "TaskETA", eta),
    ]
    if retry_count > 0:
        headers += [(prefix + "TaskPreviousResponse", claim.prev_response),
                    (prefix + "TaskRetryReason", claim.retry_reason)]
    body = req.body if body_allowed else b""
    if body_allowed:
        headers.append(("Content-Length", str(len(body))))
    return Prepared(url, m.HttpMethod.Name(req.http_method), headers, body, timeout)


def send(prepared: Prepared) -> Outcome:
    parts = urlsplit(prepared.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=prepared.timeout, context=_tls_context(parts.hostname or ""))
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=prepared.timeout)
    except (ValueError, http.client.InvalidURL) as exc:
        return Outcome(error=f"invalid URL: {exc}")
    deadline = time.monotonic() + prepared.timeout
    try:
        conn.putrequest(prepared.method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in prepared.headers:
            conn.putheader(name, value)
        conn.endheaders(prepared.body or None)
        response = conn.getresponse()
        # The whole answer must arrive within the deadline, not just its first byte.
        received = 0
        while received < _MAX_RESPONSE_BYTES:
            if time.monotonic() >= deadline:
                return Outcome(timed_out=True, error="deadline exceeded while reading the response")
            chunk = response.read1(65536)
            if not chunk:
                break
            received += len(chunk)
        return Outcome(status=response.status, retry_after=_retry_after(response.getheader("Retry-After")))
    except (socket.timeout, TimeoutError):
        return Outcome(timed_out=True, error="deadline exceeded")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _tls_context(host: str) -> ssl.SSLContext:
    """Loopback workers use self-signed certificates; anything else is verified normally."""
    context = ssl.create_default_context()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# Header values that identify the request and never carry a credential; every other value (user
# headers such as X-Api-Key, Authorization, cookies) is logged as <redacted>.
_LOGGABLE_HEADERS = frozenset({"host", "content-type", "content-length", "user-agent"})
_LOGGABLE_PREFIXES = ("x-cloudtasks-", "x-appengine-")


def _loggable(name: str) -> bool:
    lower = name.lower()
    return lower in _LOGGABLE_HEADERS or lower.startswith(_LOGGABLE_PREFIXES)


def redacted(prepared: Prepared) -> str:
    """A log line for the request: values only of headers known to be harmless, never the body."""
    headers = ", ".join(f"{k}: {v}" if _loggable(k) else f"{k}: <redacted>" for k, v in prepared.headers)
    return f"{prepared.method} {prepared.url} [{headers}] body={len(prepared.body)} bytes"
