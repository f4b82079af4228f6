"""Security rules: https targets, authenticated targets, no static credentials, allowed queues."""
from __future__ import annotations

import fnmatch
import json
import re
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from pulumi_policy import EnforcementLevel, ReportViolation

from ._common import REDACTED, Reporter, body_bytes, known, origin, resource_policy, target, task_props

# --- cloudtasks-https-only -------------------------------------------------------------------------

HTTPS_ONLY = "cloudtasks-https-only"
HTTPS_ONLY_SCHEMA = {
    "allowHttpHosts": {
        "type": "array", "items": {"type": "string"}, "default": ["localhost", "127.0.0.1"],
        "description": "Hosts (globs, e.g. *.internal) that may be called over plain http, such as "
                       "an emulator or a local worker.",
    },
}


def check_https_only(args: Any, report: ReportViolation, config: Mapping[str, Any]) -> None:
    props = task_props(args)
    if props is None:
        return
    http = props.get("http_request")
    url = http.get("url") if isinstance(http, Mapping) else None
    if not (isinstance(url, str) and known(url)):
        return
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return  # https, or a malformed URL that cloudtasks-service-limits reports
    host = (parts.hostname or "").lower()
    allowed = [str(h).lower() for h in config.get("allowHttpHosts") or []]
    if any(fnmatch.fnmatchcase(host, pattern) for pattern in allowed):
        return
    Reporter(args, report, props)(
        "http_request.url", origin(url),
        f"the task's payload and headers would cross the network unencrypted (host {host!r} is not in "
        f"allowHttpHosts {allowed})",
        "use an https:// URL; for a local or emulator worker add its host to allowHttpHosts in the "
        "policy pack config")


# --- cloudtasks-authenticated-targets --------------------------------------------------------------

AUTHENTICATED = "cloudtasks-authenticated-targets"
AUTHENTICATED_SCHEMA = {
    "exemptUrlPrefixes": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "URL prefixes (e.g. https://public.example.com/hooks/) whose handlers "
                       "authenticate tasks another way and need no OIDC or OAuth token.",
    },
}


def check_authenticated_targets(args: Any, report: ReportViolation, config: Mapping[str, Any]) -> None:
    props = task_props(args)
    if props is None:
        return
    http = props.get("http_request")
    if not isinstance(http, Mapping):
        return  # App Engine targets are authenticated by the platform; unknown targets are skipped
    tokens = [http.get("oidc_token"), http.get("oauth_token")]
    if any(t is not None for t in tokens):
        return  # a token is given (even if still unknown in preview)
    url = http.get("url")
    if not (isinstance(url, str) and known(url)):
        return  # the exemptions cannot be decided yet
    if any(url.startswith(str(prefix)) for prefix in config.get("exemptUrlPrefixes") or []):
        return
    Reporter(args, report, props)(
        "http_request", f"a request to {origin(url)} with neither oidc_token nor oauth_token",
        "the worker cannot tell a task from Cloud Tasks from any other caller",
        "add http_request.oidc_token (service_account_email, audience) for Cloud Run / Functions / "
        "your own services, or oauth_token for Google APIs; or list the URL's prefix in "
        "exemptUrlPrefixes if the handler authenticates tasks another way")


# --- cloudtasks-no-static-credentials ---------------------------------------------------------------

NO_STATIC_CREDENTIALS = "cloudtasks-no-static-credentials"
NO_STATIC_CREDENTIALS_SCHEMA: dict[str, dict[str, Any]] = {}

_CREDENTIAL_HEADER_RE = re.compile(
    r"^(authorization|proxy-authorization|cookie)$|api[-_]?key|apikey"
    r"|(auth|access|session|refresh|id|bearer)[-_]?token|secret|passw(or)?d|credential", re.I)
_CREDENTIAL_KEY_RE = re.compile(
    r"passw(or)?d|secret|api[-_]?key|apikey|(auth|access|refresh|session|id|bearer)[-_]?token"
    r"|private[-_]?key|authorization|credential|^token$", re.I)
_CREDENTIAL_TEXT = (
    ("a PEM private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("an AWS access key ID", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a bearer token", re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{16,}")),
    ("a JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)


def credential_header(name: str) -> bool:
    return bool(_CREDENTIAL_HEADER_RE.search(name))


def body_credentials(data: bytes) -> list[str]:
    """What obvious credentials a body holds, described without their values."""
    text = data.decode("utf-8", "replace")
    found = [what for what, pattern in _CREDENTIAL_TEXT if pattern.search(text)]
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    keys: list[str] = []
    if document is not None:
        _credential_keys(document, "", keys)
    elif "=" in text and "\n" not in text.strip():
        keys = [k for k, v in parse_qsl(text.strip(), keep_blank_values=False) if _CREDENTIAL_KEY_RE.search(k) and v]
    found.extend(f"a field {key!r}" for key in keys)
    return found


def _credential_keys(node: Any, path: str, out: list[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if _CREDENTIAL_KEY_RE.search(str(key)) and isinstance(value, str) and value.strip():
                out.append(here)
            else:
                _credential_keys(value, here, out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _credential_keys(value, f"{path}[{i}]", out)


def check_no_static_credentials(args: Any, report: ReportViolation, _config: Mapping[str, Any]) -> None:
    props = task_props(args)
    found = target(props) if props is not None else None
    if found is None:
        return
    field, request = found
    if not isinstance(request, Mapping):
        return
    reporter = Reporter(args, report, props)
    headers = request.get("headers")
    token_kind = "oidc_token" if field == "http_request" else "the App Engine service's own auth"
    if isinstance(headers, Mapping):
        for name in headers:
            if credential_header(str(name)):
                reporter(f"{field}.headers[{name!r}]", REDACTED,
                         "a static credential in a task header is stored in the Pulumi state and "
                         "the task, readable by anyone who can view either, and never rotates",
                         f"remove the header and use {token_kind}"
                         + (" (or oauth_token for Google APIs)" if field == "http_request" else ""))
    data = body_bytes(request)
    if data:
        path = f"{field}.body" if request.get("body") is not None else f"{field}.body_base64"
        for what in body_credentials(data):
            reporter(path, f"<{len(data)} bytes, redacted>",
                     f"the body contains {what}: a static credential in the payload is stored in the "
                     "Pulumi state and the task",
                     f"send a reference (e.g. a Secret Manager name) instead and authenticate with "
                     f"{token_kind}")


# --- cloudtasks-allowed-queues ----------------------------------------------------------------------

ALLOWED_QUEUES = "cloudtasks-allowed-queues"
ALLOWED_QUEUES_SCHEMA = {
    "allowedQueues": {
        "type": "array", "items": {"type": "string"},
        "description": "Queue name globs: projects/P/locations/L/queues/Q or the short P/L/Q, each "
                       "segment a glob (* never crosses a /). Unset: every queue is allowed.",
    },
}


def _expand(pattern: str) -> str:
    parts = pattern.strip("/").split("/")
    if len(parts) == 3 and parts[0] != "projects":
        return f"projects/{parts[0]}/locations/{parts[1]}/queues/{parts[2]}"
    return pattern.strip("/")


def queue_allowed(queue: str, patterns: list[str]) -> bool:
    segments = queue.split("/")
    for pattern in patterns:
        wanted = _expand(str(pattern)).split("/")
        if len(wanted) == len(segments) and all(
                fnmatch.fnmatchcase(s, w) for s, w in zip(segments, wanted)):
            return True
    return False


def check_allowed_queues(args: Any, report: ReportViolation, config: Mapping[str, Any]) -> None:
    props = task_props(args)
    patterns = config.get("allowedQueues")
    if props is None or patterns is None:
        return  # not configured: the rule passes
    queue = props.get("queue")
    if not (isinstance(queue, str) and known(queue)):
        return
    if queue_allowed(queue, list(patterns)):
        return
    Reporter(args, report, props)(
        "queue", repr(queue), f"the queue is not one of allowedQueues {list(patterns)}",
        "enqueue into an allowed queue, or add the queue (or a glob for it) to allowedQueues in the "
        "policy pack config")


POLICIES = [
    resource_policy(HTTPS_ONLY, "HTTP tasks must target https URLs (plain http only for allowHttpHosts).",
                    EnforcementLevel.MANDATORY, HTTPS_ONLY_SCHEMA, check_https_only),
    resource_policy(AUTHENTICATED, "HTTP tasks must carry an OIDC or OAuth token (except exemptUrlPrefixes).",
                    EnforcementLevel.MANDATORY, AUTHENTICATED_SCHEMA, check_authenticated_targets),
    resource_policy(NO_STATIC_CREDENTIALS, "Tasks must not carry static credentials in headers or bodies.",
                    EnforcementLevel.MANDATORY, NO_STATIC_CREDENTIALS_SCHEMA, check_no_static_credentials),
    resource_policy(ALLOWED_QUEUES, "Tasks must be enqueued into one of the allowedQueues (when configured).",
                    EnforcementLevel.MANDATORY, ALLOWED_QUEUES_SCHEMA, check_allowed_queues),
]
