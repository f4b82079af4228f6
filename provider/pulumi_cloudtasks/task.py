"""The user-facing surface: ``Task`` and its input types, in the conventions of pulumi-gcp."""
from __future__ import annotations

import base64
import dataclasses
import enum
from datetime import datetime, timedelta
from typing import Any, Mapping, Optional, Sequence, Union

import pulumi
import pulumi.dynamic
from cloudtasks_emulator.core import rules

from . import spec
from .provider import TaskProvider

TASK_TYPE_TOKEN = "pulumi-python:dynamic/cloudtasks:Task"


class HttpMethod(str, enum.Enum):
    """The HTTP method of a task's request (a plain string such as ``"POST"`` works too)."""
    POST = "POST"
    GET = "GET"
    HEAD = "HEAD"
    PUT = "PUT"
    DELETE = "DELETE"
    PATCH = "PATCH"
    OPTIONS = "OPTIONS"


@dataclasses.dataclass
class OAuthTokenArgs:
    """An OAuth access token sent as ``Authorization`` (for Google APIs on ``*.googleapis.com``)."""
    service_account_email: pulumi.Input[str]
    """Service account whose token is sent; the caller needs ``iam.serviceAccounts.actAs`` on it."""
    scope: Optional[pulumi.Input[str]] = None
    """OAuth scope; default ``https://www.googleapis.com/auth/cloud-platform``."""


@dataclasses.dataclass
class OidcTokenArgs:
    """An OIDC ID token sent as ``Authorization: Bearer`` (Cloud Run, Cloud Functions, your own API)."""
    service_account_email: pulumi.Input[str]
    """Service account whose identity the token asserts."""
    audience: Optional[pulumi.Input[str]] = None
    """Token audience; default: the target URL."""


@dataclasses.dataclass
class HttpRequestArgs:
    """An HTTP target: Cloud Tasks sends this request to ``url``."""
    url: pulumi.Input[str]
    """Full ``http://`` or ``https://`` URL (https when a token is set), at most 2083 characters."""
    http_method: Optional[pulumi.Input[Union[str, HttpMethod]]] = None
    """HTTP method; default ``POST``. A body is allowed only with POST, PUT or PATCH."""
    headers: Optional[pulumi.Input[Mapping[str, pulumi.Input[str]]]] = None
    """Request headers; not Host, Content-Length, X-Google-* or X-AppEngine-*."""
    body: Optional[pulumi.Input[Union[str, bytes]]] = None
    """Request body: text is sent as UTF-8, bytes as they are."""
    oauth_token: Optional[pulumi.Input[OAuthTokenArgs]] = None
    """Send an OAuth access token (exclusive with ``oidc_token``)."""
    oidc_token: Optional[pulumi.Input[OidcTokenArgs]] = None
    """Send an OIDC ID token (exclusive with ``oauth_token``)."""


@dataclasses.dataclass
class AppEngineRoutingArgs:
    """Which App Engine service, version and instance receives the task; default: the default ones."""
    service: Optional[pulumi.Input[str]] = None
    """App Engine service."""
    version: Optional[pulumi.Input[str]] = None
    """App Engine version."""
    instance: Optional[pulumi.Input[str]] = None
    """App Engine instance."""


@dataclasses.dataclass
class AppEngineHttpRequestArgs:
    """An App Engine target: Cloud Tasks sends this request to ``relative_uri`` of the app."""
    relative_uri: Optional[pulumi.Input[str]] = None
    """Path and query starting with ``/``, no spaces; default ``/``."""
    http_method: Optional[pulumi.Input[Union[str, HttpMethod]]] = None
    """HTTP method; default ``POST``. A body is allowed only with POST or PUT."""
    headers: Optional[pulumi.Input[Mapping[str, pulumi.Input[str]]]] = None
    """Request headers; not Host, Content-Length, X-Google-* or X-AppEngine-*."""
    body: Optional[pulumi.Input[Union[str, bytes]]] = None
    """Request body: text is sent as UTF-8, bytes as they are."""
    app_engine_routing: Optional[pulumi.Input[AppEngineRoutingArgs]] = None
    """Service, version and instance to send the task to."""


@dataclasses.dataclass
class TaskArgs:
    """The inputs of a ``Task``; every change replaces the task (tasks are immutable)."""
    queue: pulumi.Input[str]
    """Full queue name ``projects/P/locations/L/queues/Q`` (e.g. ``gcp.cloudtasks.Queue(...).id``)."""
    task_id: Optional[pulumi.Input[str]] = None
    """Task ID (``[A-Za-z0-9_-]``, 1-500); default ``<resource name>-<random suffix>``, renewed on
    every replacement. Cloud Tasks reserves a name after the task ran or was deleted, so an explicit
    ID cannot be reused by a replacement."""
    http_request: Optional[pulumi.Input[HttpRequestArgs]] = None
    """HTTP target (exactly one of ``http_request`` and ``app_engine_http_request``)."""
    app_engine_http_request: Optional[pulumi.Input[AppEngineHttpRequestArgs]] = None
    """App Engine target (exactly one of ``http_request`` and ``app_engine_http_request``)."""
    schedule_time: Optional[pulumi.Input[Union[str, datetime]]] = None
    """When to dispatch: RFC3339 string or timezone-aware datetime, at most 30 days ahead; default now."""
    dispatch_deadline: Optional[pulumi.Input[Union[str, float, timedelta]]] = None
    """How long one attempt may take: ``"600s"``, seconds or a timedelta. HTTP: 15s-30min, default
    600s; App Engine: 15s-24h15s, default the scaling type's."""
    triggers: Optional[pulumi.Input[Sequence[Any]]] = None
    """Any values; changing them enqueues the task again (a task that ran stays ``gone`` otherwise)."""


def _plain(value: Any) -> Any:
    """Input types to the snake_case dicts the provider reads (Outputs inside stay Outputs)."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out = {k: _plain(v) for k, v in value.items() if v is not None}
        if isinstance(out.get("body"), (bytes, bytearray)):  # bytes cannot cross the RPC boundary
            out["body_base64"] = base64.b64encode(bytes(out.pop("body"))).decode("ascii")
        elif isinstance(out.get("body"), pulumi.Output):
            out["body"] = out["body"].apply(_text_body)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _text_body(body: Any) -> Any:
    return body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body


def _wire(value: Any, convert: Any) -> Any:
    """Apply ``convert`` to a plain value or, later, to an Output's value."""
    if isinstance(value, pulumi.Output):
        return value.apply(convert)
    return convert(value)


def _time(value: Any) -> Any:
    if isinstance(value, datetime):
        try:
            return rules.format_time(spec.parse_time(value))
        except ValueError:
            return value.isoformat()  # naive: check reports it with the rule
    return value


def _duration(value: Any) -> Any:
    return rules.format_duration(value.total_seconds()) if isinstance(value, timedelta) else value


class Task(pulumi.dynamic.Resource, module="cloudtasks", name="Task"):
    """One Cloud Tasks task. ``pulumi up`` enqueues it once; ``refresh`` shows how it fared
    (``status``: ``scheduled``, ``dispatched`` or ``gone``); ``destroy`` deletes it if it has not run."""

    queue: pulumi.Output[str]
    task_id: pulumi.Output[str]
    http_request: pulumi.Output[Optional[dict]]
    app_engine_http_request: pulumi.Output[Optional[dict]]
    schedule_time: pulumi.Output[str]
    """When the task is (or was) scheduled, as the service stored it."""
    dispatch_deadline: pulumi.Output[Optional[str]]
    triggers: pulumi.Output[Optional[list]]
    name: pulumi.Output[str]
    """Full task name ``projects/P/locations/L/queues/Q/tasks/ID``."""
    create_time: pulumi.Output[str]
    dispatch_count: pulumi.Output[int]
    response_count: pulumi.Output[int]
    first_attempt: pulumi.Output[Optional[dict]]
    last_attempt: pulumi.Output[Optional[dict]]
    view: pulumi.Output[str]
    status: pulumi.Output[str]
    """``scheduled`` (never dispatched), ``dispatched`` (attempted, still queued) or ``gone``."""

    def __init__(self, resource_name: str, args: Optional[TaskArgs] = None,
                 opts: Optional[pulumi.ResourceOptions] = None, **kwargs: Any) -> None:
        """Create a Task from a ``TaskArgs`` or the same fields as keyword arguments."""
        fields = {f.name for f in dataclasses.fields(TaskArgs)}
        unknown = set(kwargs) - fields
        if unknown:
            raise TypeError(f"Task got unexpected arguments: {', '.join(sorted(unknown))}")
        values = _plain(args) if args is not None else {}
        values.update(_plain({k: v for k, v in kwargs.items() if v is not None}))
        if "schedule_time" in values:
            values["schedule_time"] = _wire(values["schedule_time"], _time)
        if "dispatch_deadline" in values:
            values["dispatch_deadline"] = _wire(values["dispatch_deadline"], _duration)
        is_get = opts is not None and opts.id is not None
        if not is_get and values.get("queue") is None:
            raise TypeError("Missing required property 'queue'")
        props: dict[str, Any] = {f: values.get(f) for f in spec.SPEC_FIELDS}
        props.update({f: None for f in spec.OUTPUT_FIELDS if f not in spec.SPEC_FIELDS})
        props[spec.NAME_KEY] = resource_name
        super().__init__(TaskProvider(), resource_name, props, opts)

    @staticmethod
    def get(resource_name: str, id: pulumi.Input[str],
            opts: Optional[pulumi.ResourceOptions] = None) -> "Task":
        """Look up an existing task by its full name ``projects/P/locations/L/queues/Q/tasks/ID``."""
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id))
        return Task(resource_name, opts=opts)
