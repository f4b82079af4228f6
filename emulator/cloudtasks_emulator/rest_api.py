"""The REST (HTTP/JSON) adapter: route, decode, call the core service, encode. No API rules here.

Routes are the ``google.api.http`` rules of google.cloud.tasks.v2.CloudTasks, exactly as the
official REST transport uses them (a test compares this table with the client library's own), so an
unmodified client works with only an endpoint change. Errors are Google's JSON error body with the
HTTP status mapped from the canonical gRPC code.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
from google.cloud.location import locations_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from .core.errors import ApiError
from .core.methods import METHODS
from .rest_json import JsonError, parse_into, query_to_dict

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# Google system parameters: accepted on every call, never bound to the request message.
_SYSTEM_PARAMS = {
    "$alt", "alt", "$prettyPrint", "prettyPrint", "key", "fields", "$fields", "access_token", "oauth_token",
    "quotaUser", "$.xgafv", "callback", "$callback", "upload_protocol", "uploadType", "$ct",
}

_Q = "projects/*/locations/*/queues/*"
_T = _Q + "/tasks/*"
# (RPC, verb, uri template, body) — the google.api.http rules of the v2 protos.
HTTP_RULES: list[tuple[str, str, str, str | None]] = [
    ("ListQueues", "GET", "/v2/{parent=projects/*/locations/*}/queues", None),
    ("GetQueue", "GET", "/v2/{name=%s}" % _Q, None),
    ("CreateQueue", "POST", "/v2/{parent=projects/*/locations/*}/queues", "queue"),
    ("UpdateQueue", "PATCH", "/v2/{queue.name=%s}" % _Q, "queue"),
    ("DeleteQueue", "DELETE", "/v2/{name=%s}" % _Q, None),
    ("PurgeQueue", "POST", "/v2/{name=%s}:purge" % _Q, "*"),
    ("PauseQueue", "POST", "/v2/{name=%s}:pause" % _Q, "*"),
    ("ResumeQueue", "POST", "/v2/{name=%s}:resume" % _Q, "*"),
    ("GetIamPolicy", "POST", "/v2/{resource=%s}:getIamPolicy" % _Q, "*"),
    ("SetIamPolicy", "POST", "/v2/{resource=%s}:setIamPolicy" % _Q, "*"),
    ("TestIamPermissions", "POST", "/v2/{resource=%s}:testIamPermissions" % _Q, "*"),
    ("ListTasks", "GET", "/v2/{parent=%s}/tasks" % _Q, None),
    ("GetTask", "GET", "/v2/{name=%s}" % _T, None),
    ("CreateTask", "POST", "/v2/{parent=%s}/tasks" % _Q, "*"),
    ("DeleteTask", "DELETE", "/v2/{name=%s}" % _T, None),
    ("RunTask", "POST", "/v2/{name=%s}:run" % _T, "*"),
    # google.cloud.location.Locations mixin, served by the adapter itself.
    ("GetLocation", "GET", "/v2/{name=projects/*/locations/*}", None),
    ("ListLocations", "GET", "/v2/{name=projects/*}/locations", None),
]

# Regions where Cloud Tasks is offered; the emulator accepts any location, this is only for listing.
LOCATIONS: dict[str, str] = {
    "asia-east1": "Taiwan", "asia-northeast1": "Tokyo", "asia-south1": "Mumbai", "asia-southeast1": "Singapore",
    "australia-southeast1": "Sydney", "europe-west1": "Belgium", "europe-west2": "London",
    "europe-west3": "Frankfurt", "northamerica-northeast1": "Montréal", "southamerica-east1": "São Paulo",
    "us-central1": "Iowa", "us-east1": "South Carolina", "us-east4": "Northern Virginia", "us-west1": "Oregon",
}


class Service(Protocol):
    def invoke(self, method_name: str, request: Message) -> Message: ...


@dataclass(frozen=True)
class Route:
    rpc: str
    verb: str
    template: str
    body: str | None
    field: str  # the request field bound from the path, e.g. "queue.name"
    regex: re.Pattern[str]


def _compile(template: str) -> tuple[str, re.Pattern[str]]:
    m = re.fullmatch(r"(.*)\{([\w.]+)=([^}]+)\}(.*)", template)
    if not m:
        raise ValueError(f"unsupported template {template}")
    before, field, pattern, after = m.groups()
    segs = ["[^/]+" if s == "*" else ".+" if s == "**" else re.escape(s) for s in pattern.split("/")]
    return field, re.compile(re.escape(before) + "(?P<v>" + "/".join(segs) + ")" + re.escape(after) + r"\Z")


ROUTES: list[Route] = [Route(r, v, t, b, *_compile(t)) for r, v, t, b in HTTP_RULES]


@dataclass
class RestResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    def json_bytes(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def error_response(code: grpc.StatusCode, message: str, headers: dict[str, str] | None = None,
                   http_status: int | None = None) -> RestResponse:
    status = http_status or HTTP_STATUS.get(code, 500)
    body = {"error": {"code": status, "message": message, "status": code.name}}
    return RestResponse(status, body, headers or {})


def _set_path_field(message: Message, dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    target = message
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)


def _enum_as_int(params: dict[str, list[str]]) -> bool:
    for key in ("$alt", "alt"):
        for value in params.get(key, []):
            if "enum-encoding=int" in value.replace(" ", "").split(";"):
                return True
    return False


class RestApi:
    """Turns one HTTP request into one ``service.invoke`` call. Thread-safe (holds no state)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def handle(self, verb: str, target: str, body: bytes) -> RestResponse:
        try:
            return self._handle(verb.upper(), target, body)
        except Exception:  # a bug in the adapter must cost one request, never the server
            log.exception("internal error while serving %s %s", verb, urlsplit(target).path)
            return error_response(grpc.StatusCode.INTERNAL, "Internal error encountered.")

    def _handle(self, verb: str, target: str, body: bytes) -> RestResponse:
        parts = urlsplit(target)
        path = parts.path
        try:
            params = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed query string: {exc}")
        matches = [(r, m) for r in ROUTES if (m := r.regex.match(path))]
        if not matches:
            return error_response(grpc.StatusCode.NOT_FOUND, f"The requested URL {path} was not found on this server.")
        found = next(((r, m) for r, m in matches if r.verb == verb), None)
        if found is None:
            allowed = sorted({r.verb for r, _ in matches})
            return error_response(
                grpc.StatusCode.UNIMPLEMENTED,
                f"Method {verb} is not allowed for {path}; allowed: {', '.join(allowed)}.",
                {"Allow": ", ".join(allowed)},
                http_status=405,
            )
        route, match = found
        if len(body) > MAX_BODY_BYTES:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, "Request payload size exceeds the limit.",
                                  http_status=413)
        enum_int = _enum_as_int(params)
        query = {k: v for k, v in params.items() if k not in _SYSTEM_PARAMS}
        try:
            request = self._decode(route, unquote(match.group("v")), query, body)
        except JsonError as exc:
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            response = self._call(route.rpc, request)
        except ApiError as exc:
            return error_response(exc.code, exc.message)
        return RestResponse(200, json_format.MessageToDict(response, use_integers_for_enums=enum_int), {})

    def _request_class(self, rpc: str) -> type[Message]:
        if rpc == "GetLocation":
            return locations_pb2.GetLocationRequest
        if rpc == "ListLocations":
            return locations_pb2.ListLocationsRequest
        return METHODS[rpc].request

    def _decode(self, route: Route, path_value: str, query: dict[str, list[str]], body: bytes) -> Message:
        request = self._request_class(route.rpc)()
        if route.body is not None and body.strip():
            try:
                doc = json.loads(body.decode("utf-8"))
            except UnicodeDecodeError:
                raise JsonError("Invalid JSON payload received. The body is not valid UTF-8.") from None
            except RecursionError:
                raise JsonError("Invalid JSON payload received. Nesting too deep.") from None
            except ValueError as exc:
                raise JsonError(f"Invalid JSON payload received. {exc}.") from None
            if route.body == "*":
                parse_into(doc, request)
            else:  # a single field: the body is that message, e.g. the Queue of CreateQueue
                parse_into(doc, getattr(request, route.body), route.body)
        if query:
            from_query = self._request_class(route.rpc)()
            parse_into(query_to_dict(from_query.DESCRIPTOR, query), from_query)
            request.MergeFrom(from_query)
        # The path wins over anything the body said about the same field, as in Google's transcoding.
        _set_path_field(request, route.field, path_value)
        return request

    def _call(self, rpc: str, request: Message) -> Message:
        if rpc == "GetLocation":
            return _location(request.name)  # type: ignore[attr-defined]
        if rpc == "ListLocations":
            return _list_locations(request)  # type: ignore[arg-type]
        return self.service.invoke(rpc, request)


def _location(name: str) -> locations_pb2.Location:
    location_id = name.rsplit("/", 1)[-1]
    loc = locations_pb2.Location(name=name, location_id=location_id,
                                 display_name=LOCATIONS.get(location_id, location_id))
    loc.labels["cloud.googleapis.com/region"] = location_id
    return loc


def _list_locations(request: locations_pb2.ListLocationsRequest) -> locations_pb2.ListLocationsResponse:
    ids = sorted(LOCATIONS)
    if request.filter:
        # Enough of AIP-160 for the usual use: a substring of the id (e.g. "us-").
        needle = request.filter.split("=", 1)[-1].strip().strip('"')
        ids = [i for i in ids if needle in i]
    start = int(request.page_token) if request.page_token.isdigit() else 0
    if request.page_token and not request.page_token.isdigit():
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid page token.")
    size = request.page_size if request.page_size > 0 else len(ids)
    page = ids[start:start + size]
    resp = locations_pb2.ListLocationsResponse(locations=[_location(f"{request.name}/locations/{i}") for i in page])
    if start + size < len(ids):
        resp.next_page_token = str(start + size)
    return resp
