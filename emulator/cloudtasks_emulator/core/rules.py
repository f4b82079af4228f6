"""The rules of the Cloud Tasks v2 API, stated once.

The emulator enforces them on requests; the provider's ``check`` and the policy pack reuse them on
stack inputs, so the three can never disagree. Everything here works on plain values (strings,
numbers, bytes, aware datetimes, dicts in the API's snake_case field names), never on protobufs or
pulumi types. Messages are the real service's INVALID_ARGUMENT texts where they are known.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

# --- Names -------------------------------------------------------------------------------------

PROJECT_ID_RE = r"[A-Za-z0-9\-:.]+"
LOCATION_ID_RE = r"[A-Za-z0-9\-]+"
QUEUE_ID_RE = re.compile(r"[A-Za-z0-9-]{1,100}")
TASK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,500}")
LOCATION_NAME_RE = re.compile(rf"projects/({PROJECT_ID_RE})/locations/({LOCATION_ID_RE})")
QUEUE_NAME_RE = re.compile(rf"projects/({PROJECT_ID_RE})/locations/({LOCATION_ID_RE})/queues/([^/]*)")
TASK_NAME_RE = re.compile(
    rf"(projects/{PROJECT_ID_RE}/locations/{LOCATION_ID_RE}/queues/[^/]*)/tasks/([^/]*)"
)
TASK_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

QUEUE_NAME_FORMAT_MESSAGE = (
    'Queue name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>".'
)
TASK_NAME_FORMAT_MESSAGE = (
    'Task name must be formatted: '
    '"projects/<PROJECT_ID>/locations/<LOCATION_ID>/queues/<QUEUE_ID>/tasks/<TASK_ID>".'
)
LOCATION_NAME_FORMAT_MESSAGE = 'Location name must be formatted: "projects/<PROJECT_ID>/locations/<LOCATION_ID>".'


@dataclass(frozen=True)
class Violation:
    """One broken rule: the field at fault (API snake_case path, e.g. ``http_request.url``) and why."""

    field: str
    message: str


def location_name_error(name: str) -> str | None:
    return None if LOCATION_NAME_RE.fullmatch(name or "") else LOCATION_NAME_FORMAT_MESSAGE


def queue_id_error(queue_id: str) -> str | None:
    if QUEUE_ID_RE.fullmatch(queue_id or ""):
        return None
    return (
        f'Queue ID "{queue_id}" can contain only letters ([A-Za-z]), numbers ([0-9]), or hyphens (-). '
        "Queue ID must be between 1 and 100 characters."
    )


def queue_name_error(name: str) -> str | None:
    """None when ``name`` is a valid full queue name, else the service's message."""
    match = QUEUE_NAME_RE.fullmatch(name or "")
    if not match:
        return QUEUE_NAME_FORMAT_MESSAGE
    return queue_id_error(match.group(3))


def task_id_error(task_id: str) -> str | None:
    if TASK_ID_RE.fullmatch(task_id or ""):
        return None
    return (
        f'Task ID "{task_id}" can contain only letters ([A-Za-z]), numbers ([0-9]), hyphens (-), '
        "or underscores (_). Task ID must between 1 and 500 characters."
    )


def split_task_name(name: str) -> tuple[str, str] | None:
    """``(queue_name, task_id)`` of a full task name, or None when it is not shaped like one."""
    match = TASK_NAME_RE.fullmatch(name or "")
    return (match.group(1), match.group(2)) if match else None


def task_name_error(name: str, parent: str | None = None) -> str | None:
    """None when ``name`` is a valid full task name (in queue ``parent`` when given)."""
    if parent is not None and name.startswith(parent + "/tasks/"):
        # The common case on CreateTask: the queue part is the (valid) parent, so only the ID is left.
        task_id = name[len(parent) + len("/tasks/"):]
        if "/" not in task_id and queue_name_error(parent) is None:
            return task_id_error(task_id)
    parts = split_task_name(name)
    if parts is None:
        return TASK_NAME_FORMAT_MESSAGE
    queue, task_id = parts
    error = queue_name_error(queue) or task_id_error(task_id)
    if error:
        return error
    if parent is not None and queue != parent:
        return (
            f"The queue name from request ('{parent}') must be the same as the queue name in the "
            f"named task ('{queue}')."
        )
    return None


def short_id(name: str) -> str:
    """The last segment of a resource name (queue ID or task ID)."""
    return name.rsplit("/", 1)[-1]


# --- Well-known protobuf values ------------------------------------------------------------------

# google.protobuf.Timestamp covers 0001-01-01 to 9999-12-31; Duration +-10 000 years.
TIMESTAMP_SECONDS_RANGE = (-62135596800, 253402300799)
DURATION_SECONDS_LIMIT = 315576000000


def timestamp_error(field: str, seconds: int, nanos: int) -> str | None:
    low, high = TIMESTAMP_SECONDS_RANGE
    if low <= seconds <= high and 0 <= nanos < 10**9:
        return None
    return f"{field} is not a valid timestamp: it must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z."


def duration_error(field: str, seconds: int, nanos: int) -> str | None:
    if abs(seconds) <= DURATION_SECONDS_LIMIT and abs(nanos) < 10**9 and (seconds * nanos >= 0):
        if seconds >= 0 and nanos >= 0:
            return None
        return f"{field} must not be negative."
    return f"{field} is not a valid duration: it must be within +-{DURATION_SECONDS_LIMIT}s."


# --- Task limits -------------------------------------------------------------------------------

MAX_URL_LENGTH = 2083
# The API reference says 100 KB, the quota page 1 MB; the quota page is the newer statement.
MAX_TASK_SIZE_BYTES = 1024 * 1024
MAX_HEADERS_BYTES = 80 * 1024
MAX_SCHEDULE_AHEAD = timedelta(hours=720)
HTTP_DEADLINE_DEFAULT_SECONDS = 600.0
HTTP_DEADLINE_RANGE_SECONDS = (15.0, 1800.0)
APP_ENGINE_DEADLINE_RANGE_SECONDS = (15.0, 86400.0 + 15.0)
HTTP_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
APP_ENGINE_BODY_METHODS = frozenset({"POST", "PUT"})
HTTP_METHODS = ("POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
DEFAULT_HTTP_METHOD = "POST"
DEFAULT_OAUTH_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Set by Cloud Tasks itself: a value given by the user is replaced, so asking for it is a mistake.
COMPUTED_HEADERS = frozenset({"host", "content-length"})
RESERVED_HEADER_PREFIXES = ("x-google-", "x-appengine-")

TASK_SIZE_MESSAGE = "Task size too large"


def task_size_error(size_bytes: int, limit: int = MAX_TASK_SIZE_BYTES) -> str | None:
    return TASK_SIZE_MESSAGE if size_bytes > limit else None


def http_url_error(url: str, has_token: bool) -> str | None:
    if not url:
        return "HttpRequest.url is required."
    if not (url.startswith("http://") or url.startswith("https://")):
        return "HttpTarget.url must start with 'http://' or 'https://'."
    if len(url) > MAX_URL_LENGTH:
        return f"HttpRequest.url must be at most {MAX_URL_LENGTH} characters long, got {len(url)}."
    if has_token and not url.startswith("https://"):
        return (
            "HttpRequest.url must start with 'https://' for request with "
            "HttpRequest.authorization_header"
        )
    return None


def relative_uri_error(relative_uri: str) -> str | None:
    if relative_uri and not relative_uri.startswith("/"):
        return "AppEngineHttpRequest.relative_uri must begin with \"/\"."
    if " " in (relative_uri or ""):
        return "AppEngineHttpRequest.relative_uri must not contain spaces."
    if len(relative_uri or "") > MAX_URL_LENGTH:
        return f"AppEngineHttpRequest.relative_uri must be at most {MAX_URL_LENGTH} characters long."
    return None


def header_error(name: str) -> str | None:
    """Why a user may not set header ``name``, or None."""
    lower = name.lower()
    if lower in COMPUTED_HEADERS:
        return f"Header {name!r} is computed by Cloud Tasks and cannot be set."
    if lower.startswith(RESERVED_HEADER_PREFIXES):
        return f"Header {name!r} is reserved: X-Google-* and X-AppEngine-* headers are for Google use only."
    if not name or any(c in name for c in " :\r\n"):
        return f"Header name {name!r} is not a valid HTTP header name."
    return None


def headers_size_error(headers: Mapping[str, str]) -> str | None:
    size = sum(len(k) + len(v) for k, v in headers.items())
    if size >= MAX_HEADERS_BYTES:
        return f"Headers must total less than {MAX_HEADERS_BYTES} bytes, got {size}."
    return None


def body_allowed(method: str, app_engine: bool) -> bool:
    return method in (APP_ENGINE_BODY_METHODS if app_engine else HTTP_BODY_METHODS)


def body_method_error(method: str, app_engine: bool) -> str:
    allowed = "POST or PUT" if app_engine else "POST, PUT or PATCH"
    kind = "AppEngineHttpRequest" if app_engine else "HttpRequest"
    return f"{kind}.body is only allowed for HTTP method {allowed}, not {method}."


def dispatch_deadline_error(seconds: float, app_engine: bool) -> str | None:
    """None when ``seconds`` is allowed for the target type (0 means the default)."""
    if seconds == 0:
        return None
    low, high = APP_ENGINE_DEADLINE_RANGE_SECONDS if app_engine else HTTP_DEADLINE_RANGE_SECONDS
    if low <= seconds <= high:
        return None
    return (
        f"Task.dispatchDeadline must be between [{format_duration(low)}, {format_duration(high)}] "
        f"for {'App Engine' if app_engine else 'HTTP'} targets, got {format_duration(seconds)}."
    )


def schedule_time_error(schedule: datetime, now: datetime) -> str | None:
    if schedule - now > MAX_SCHEDULE_AHEAD:
        return (
            f"The Task.scheduleTime, {format_time(schedule)}, is too far in the future. "
            "Schedule time must be no more than 720h in the future."
        )
    return None


def validate_task(task: Mapping[str, Any], now: datetime) -> list[Violation]:
    """Every rule a CreateTask request's task breaks (sizes excepted: they need the encoded form).

    ``task`` is in the API's snake_case shape: ``http_request`` or ``app_engine_http_request`` (each
    with ``http_method`` as a name like "POST", ``headers`` dict, ``body`` bytes), ``schedule_time``
    (aware datetime or None) and ``dispatch_deadline`` (seconds or None).
    """
    out: list[Violation] = []
    http = task.get("http_request")
    app = task.get("app_engine_http_request")
    if bool(http) == bool(app):
        message = (
            "Task must have exactly one target: http_request or app_engine_http_request, "
            + ("not both." if http and app else "none was given.")
        )
        return [Violation("http_request", message)]
    prefix = "http_request" if http else "app_engine_http_request"
    request = http or app
    method = request.get("http_method") or DEFAULT_HTTP_METHOD
    if method not in HTTP_METHODS:
        out.append(Violation(f"{prefix}.http_method", f"Unknown HTTP method {method!r}; one of {', '.join(HTTP_METHODS)}."))
    if http:
        has_token = bool(http.get("oauth_token")) or bool(http.get("oidc_token"))
        if http.get("oauth_token") and http.get("oidc_token"):
            out.append(Violation("http_request.oidc_token", "HttpRequest may set only one of oauth_token and oidc_token."))
        error = http_url_error(http.get("url") or "", has_token)
        if error:
            out.append(Violation("http_request.url", error))
        for token in ("oauth_token", "oidc_token"):
            if http.get(token) and not http[token].get("service_account_email"):
                out.append(Violation(f"http_request.{token}.service_account_email", f"HttpRequest.{token}.service_account_email is required."))
    else:
        error = relative_uri_error(app.get("relative_uri") or "")
        if error:
            out.append(Violation("app_engine_http_request.relative_uri", error))
    if request.get("body") and method in HTTP_METHODS and not body_allowed(method, app_engine=bool(app)):
        out.append(Violation(f"{prefix}.body", body_method_error(method, app_engine=bool(app))))
    headers = request.get("headers") or {}
    for name in headers:
        error = header_error(name)
        if error:
            out.append(Violation(f"{prefix}.headers", error))
    error = headers_size_error(headers)
    if error:
        out.append(Violation(f"{prefix}.headers", error))
    if task.get("schedule_time") is not None:
        error = schedule_time_error(task["schedule_time"], now)
        if error:
            out.append(Violation("schedule_time", error))
    if task.get("dispatch_deadline") is not None:
        error = dispatch_deadline_error(float(task["dispatch_deadline"]), app_engine=bool(app))
        if error:
            out.append(Violation("dispatch_deadline", error))
    return out


# --- Queues ------------------------------------------------------------------------------------

MAX_DISPATCHES_PER_SECOND = 500.0
MAX_CONCURRENT_DISPATCHES = 5000
DEFAULT_RATE_LIMITS = {"max_dispatches_per_second": 500.0, "max_burst_size": 100, "max_concurrent_dispatches": 1000}
DEFAULT_RETRY_CONFIG = {
    "max_attempts": 100,
    "min_backoff": 0.1,
    "max_backoff": 3600.0,
    "max_doublings": 16,
    "max_retry_duration": 0.0,
}
DEFAULT_NAME_RESERVATION_SECONDS = 3600.0


def queue_limits_violations(rate_limits: Mapping[str, Any], retry: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    rate = rate_limits.get("max_dispatches_per_second")
    if rate is not None and not (0 <= rate <= MAX_DISPATCHES_PER_SECOND):
        out.append(Violation("rate_limits.max_dispatches_per_second", f"max_dispatches_per_second must be in [0, {MAX_DISPATCHES_PER_SECOND:g}], got {rate:g}."))
    conc = rate_limits.get("max_concurrent_dispatches")
    if conc is not None and not (0 <= conc <= MAX_CONCURRENT_DISPATCHES):
        out.append(Violation("rate_limits.max_concurrent_dispatches", f"max_concurrent_dispatches must be in [0, {MAX_CONCURRENT_DISPATCHES}], got {conc}."))
    attempts = retry.get("max_attempts")
    if attempts is not None and attempts < -1:
        out.append(Violation("retry_config.max_attempts", f"max_attempts must be -1 (unlimited) or more, got {attempts}."))
    low, high = retry.get("min_backoff"), retry.get("max_backoff")
    if low is not None and high is not None and low > high:
        out.append(Violation("retry_config.min_backoff", "min_backoff must not exceed max_backoff."))
    doublings = retry.get("max_doublings")
    if doublings is not None and doublings < 0:
        out.append(Violation("retry_config.max_doublings", f"max_doublings must be 0 or more, got {doublings}."))
    return out


def max_burst_size(max_dispatches_per_second: float) -> int:
    """The service derives the burst size from the rate; it is output-only."""
    return max(1, min(100, int(max_dispatches_per_second) or 1)) if max_dispatches_per_second >= 1 else 1


def retry_delay(attempt: int, min_backoff: float, max_backoff: float, max_doublings: int) -> float:
    """Delay before retry number ``attempt`` (1 = first retry): doubles ``max_doublings`` times from
    ``min_backoff``, then grows linearly by the last doubling step, capped at ``max_backoff``.

    The docs' example (10s, 300s, 3 doublings) gives 10, 20, 40, 80, 160, 240, 300, 300...
    """
    if attempt <= 0:
        return 0.0
    doublings = min(attempt - 1, max_doublings)
    delay = min_backoff * (2 ** doublings)
    if attempt - 1 > max_doublings:
        # The protos: "then increase linearly by 2^max_doublings * min_backoff".
        delay += min_backoff * (2 ** max_doublings) * (attempt - 1 - max_doublings)
    return min(delay, max_backoff)


# --- Canonical text forms ----------------------------------------------------------------------

def format_duration(seconds: float) -> str:
    """proto3 JSON duration: "600s", "0.5s" (milliseconds at most)."""
    text = f"{round(seconds, 3):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def format_time(value: datetime) -> str:
    """RFC3339 UTC with a Z, microseconds only when present."""
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def violations_text(violations: Iterable[Violation]) -> str:
    return "; ".join(f"{v.field}: {v.message}" for v in violations)
