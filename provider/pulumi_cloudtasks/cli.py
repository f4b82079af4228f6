"""``cloudtasks``: manage Cloud Tasks tasks and queues from the shell, in the style of ``gcloud tasks``.

    cloudtasks tasks list QUEUE [--view basic|full] [--page-size N] [--limit N]
    cloudtasks tasks describe|run|delete TASK
    cloudtasks tasks create-http-task QUEUE --url URL [...]
    cloudtasks tasks create-app-engine-task QUEUE [--relative-uri URI] [...]
    cloudtasks queues list LOCATION | describe|create|pause|resume|purge|delete QUEUE

Targets the emulator when ``--emulator-host`` or ``CLOUD_TASKS_EMULATOR_HOST`` is set, else Google
through Application Default Credentials (``client.get_client``). Resources go to stdout (a readable
table by default, ``--format json`` for scripts); status lines and errors go to stderr. Errors are one
line and exit 1 (2 for usage errors); tasks are validated by ``spec.normalize`` before any call, with
the provider's messages.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Mapping, Sequence, TextIO

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import tasks_v2
from google.protobuf import duration_pb2

from cloudtasks_emulator.core import rules

from . import cli_format as fmt
from . import client as tasks_client
from . import spec as taskspec

CLI_RETRY_DEADLINE_SECONDS = 20.0  # a person is waiting: give up on an unreachable service sooner
VIEWS = {"basic": tasks_v2.Task.View.BASIC, "full": tasks_v2.Task.View.FULL}


class CliError(Exception):
    """A failure reported as ``error: <field>: <reason>`` (exit 1)."""

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {reason}" if path else reason for path, reason in failures))


class UsageError(Exception):
    """A command line that cannot mean anything (exit 2, like argparse)."""


@dataclass
class Context:
    args: argparse.Namespace
    out: TextIO
    err: TextIO
    _client: Any = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.args.format == "json"

    def client(self) -> tasks_v2.CloudTasksClient:
        # Built on first use only, so argument and validation errors never touch the network.
        if self._client is None:
            host = self.args.emulator_host
            if host:  # people paste URLs; gRPC wants host:port
                host = host.split("://", 1)[-1].rstrip("/")
            self._client = tasks_client.get_client(host or None)
        return self._client

    def call(self, method: str, request: Mapping[str, Any], idempotent: bool = True) -> Any:
        """One API call; only calls that are safe to repeat are retried (a retried RunTask could
        dispatch twice, a retried unnamed CreateTask could enqueue twice)."""
        retry = tasks_client.retry_policy(CLI_RETRY_DEADLINE_SECONDS) if idempotent else None
        return getattr(self.client(), method)(request=dict(request), retry=retry,
                                              timeout=tasks_client.CALL_TIMEOUT_SECONDS)

    def show(self, record: Mapping[str, Any]) -> None:
        (fmt.write_json if self.json else fmt.write_yaml)(self.out, record)

    def status(self, message: str) -> None:
        self.err.write(message + "\n")


# --- names ---------------------------------------------------------------------------------------

def location_name(value: str, args: argparse.Namespace) -> str:
    if value.startswith("projects/"):
        return value
    if args.project:
        return f"projects/{args.project}/locations/{value}"
    raise UsageError(f"LOCATION {value!r}: give projects/P/locations/L, or a location ID with --project")


def queue_name(value: str, args: argparse.Namespace) -> str:
    if "/" in value:
        return value
    if args.project and args.location:
        return f"projects/{args.project}/locations/{args.location}/queues/{value}"
    raise UsageError(f"QUEUE {value!r}: give projects/P/locations/L/queues/Q, or a queue ID with "
                     "--project and --location")


def task_name(value: str, args: argparse.Namespace) -> str:
    if "/" in value:
        return value
    if args.queue:
        return f"{queue_name(args.queue, args)}/tasks/{value}"
    raise UsageError(f"TASK {value!r}: give projects/P/locations/L/queues/Q/tasks/T, or a task ID with --queue")


# --- tasks ---------------------------------------------------------------------------------------

def _show_list(ctx: Context, records: list[dict[str, Any]], columns: Any, row: Callable[[Any], list[Any]]) -> None:
    """JSON for scripts, else a table (gcloud's "Listed 0 items." on stderr when empty)."""
    if ctx.json:
        fmt.write_json(ctx.out, records)
    elif records:
        fmt.write_table(ctx.out, columns, map(row, records))
    else:
        ctx.status("Listed 0 items.")


def tasks_list(ctx: Context) -> None:
    args = ctx.args
    request = {"parent": queue_name(args.queue_arg, args), "response_view": VIEWS[args.view],
               "page_size": args.page_size or 0}
    # islice stops the pager: with --limit only the pages needed are fetched.
    records = [fmt.task_record(t) for t in islice(ctx.call("list_tasks", request), args.limit)]
    # Bodies and secret headers only on explicit request for the full JSON, as for describe.
    if not (ctx.json and args.view == "full"):
        records = [fmt.redact(r) for r in records]
    _show_list(ctx, records, fmt.TASK_COLUMNS, fmt.task_row)


def tasks_describe(ctx: Context) -> None:
    task = ctx.call("get_task", {"name": task_name(ctx.args.task, ctx.args), "response_view": VIEWS[ctx.args.view]})
    record = fmt.task_record(task)
    # The one place bodies and secret headers are printed: an explicit request for the full JSON.
    ctx.show(record if ctx.json and ctx.args.view == "full" else fmt.redact(record))


def tasks_run(ctx: Context) -> None:
    name = task_name(ctx.args.task, ctx.args)
    ctx.show(fmt.redact(fmt.task_record(ctx.call("run_task", {"name": name}, idempotent=False))))


def tasks_delete(ctx: Context) -> None:
    name = task_name(ctx.args.task, ctx.args)
    ctx.call("delete_task", {"name": name})
    ctx.status(f"Deleted task [{name}].")


def _headers(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise UsageError(f"--header {item!r}: expected KEY:VALUE")
        out[key.strip()] = value.strip()
    return out


def _body(args: argparse.Namespace) -> dict[str, Any]:
    if args.body_file is None:
        return {"body": args.body}
    try:
        with open(args.body_file, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise CliError([("--body-file", exc.strerror or str(exc))]) from None
    try:
        return {"body": data.decode("utf-8")}  # text stays readable in outputs
    except UnicodeDecodeError:
        return {"body": data}  # the field model stores it as body_base64


def _deadline(value: str | None) -> str | None:
    # Accept a bare number of seconds as gcloud does; everything else goes to the field model as is.
    return f"{value}s" if value and re.fullmatch(r"\d+(\.\d+)?", value) else value


def _create(ctx: Context, target: str, request: dict[str, Any]) -> None:
    args = ctx.args
    props = {"queue": queue_name(args.queue_arg, args), "task_id": args.id, target: request,
             "schedule_time": args.schedule_time, "dispatch_deadline": _deadline(args.dispatch_deadline)}
    spec, failures = taskspec.normalize(props)  # the provider's rules and messages, before any call
    if failures:
        raise CliError(failures)
    task = taskspec.to_api_task(spec)
    created = ctx.call("create_task", {"parent": spec["queue"], "task": task}, idempotent=bool(task.name))
    ctx.status(f"Created task [{created.name}].")
    ctx.show(fmt.redact(fmt.task_record(created, spec)))


def tasks_create_http(ctx: Context) -> None:
    args = ctx.args
    if args.oidc_token_audience and not args.oidc_service_account_email:
        raise UsageError("--oidc-token-audience needs --oidc-service-account-email")
    if args.oauth_token_scope and not args.oauth_service_account_email:
        raise UsageError("--oauth-token-scope needs --oauth-service-account-email")
    request: dict[str, Any] = {"url": args.url, "http_method": args.method,
                               "headers": _headers(args.header), **_body(args)}
    if args.oidc_service_account_email:
        request["oidc_token"] = {"service_account_email": args.oidc_service_account_email,
                                 "audience": args.oidc_token_audience}
    if args.oauth_service_account_email:
        request["oauth_token"] = {"service_account_email": args.oauth_service_account_email,
                                  "scope": args.oauth_token_scope}
    _create(ctx, "http_request", request)


def _routing(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, value.split(",")):
        key, sep, item = part.partition("=")
        if not sep or key.strip() not in ("service", "version", "instance"):
            raise argparse.ArgumentTypeError(f"{part!r}: expected service=S,version=V,instance=I")
        out[key.strip()] = item.strip()
    return out


def tasks_create_app_engine(ctx: Context) -> None:
    args = ctx.args
    request = {"relative_uri": args.relative_uri, "http_method": args.method, "headers": _headers(args.header),
               "app_engine_routing": args.routing, **_body(args)}
    _create(ctx, "app_engine_http_request", request)


# --- queues --------------------------------------------------------------------------------------

def _checked_queue(ctx: Context) -> str:
    name = queue_name(ctx.args.queue_arg, ctx.args)
    if error := rules.queue_name_error(name):
        raise CliError([("queue", error)])
    return name


def queues_list(ctx: Context) -> None:
    request = {"parent": location_name(ctx.args.location_arg, ctx.args), "filter": ctx.args.filter or ""}
    records = [fmt.queue_record(q) for q in ctx.call("list_queues", request)]
    _show_list(ctx, records, fmt.QUEUE_COLUMNS, fmt.queue_row)


def queues_describe(ctx: Context) -> None:
    ctx.show(fmt.queue_record(ctx.call("get_queue", {"name": _checked_queue(ctx)})))


def _duration(flag: str, value: str) -> duration_pb2.Duration:
    try:
        seconds = taskspec.parse_duration(_deadline(value))
    except ValueError as exc:
        raise CliError([(flag, str(exc))]) from None
    return duration_pb2.Duration(seconds=int(seconds), nanos=round(seconds % 1 * 1e9))


def queues_create(ctx: Context) -> None:
    args, name = ctx.args, _checked_queue(ctx)
    rate_limits = {k: v for k, v in (("max_dispatches_per_second", args.max_dispatches_per_second),
                                     ("max_concurrent_dispatches", args.max_concurrent_dispatches)) if v is not None}
    retry_config: dict[str, Any] = {"max_attempts": args.max_attempts} if args.max_attempts is not None else {}
    for flag, key in (("--min-backoff", "min_backoff"), ("--max-backoff", "max_backoff")):
        if (value := getattr(args, key)) is not None:
            retry_config[key] = _duration(flag, value)
    queue = tasks_v2.Queue(name=name, rate_limits=rate_limits or None, retry_config=retry_config or None)
    created = ctx.call("create_queue", {"parent": name.rsplit("/queues/", 1)[0], "queue": queue}, idempotent=False)
    ctx.status(f"Created queue [{created.name}].")
    ctx.show(fmt.queue_record(created))


def _queue_action(method: str, verb: str) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        name = _checked_queue(ctx)
        result = ctx.call(method, {"name": name})
        ctx.status(f"{verb} queue [{name}].")
        if method != "delete_queue":
            ctx.show(fmt.queue_record(result))
    return run


# --- the command line ----------------------------------------------------------------------------

def _global_options(in_subcommand: bool) -> argparse.ArgumentParser:
    # Subcommands repeat the global flags with SUPPRESS defaults, so `tasks list Q --format json`
    # works and does not reset a value given before the subcommand.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if in_subcommand else value
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--format", choices=("table", "json"), default=default("table"),
                   help="table (default, readable) or json (for scripts)")
    p.add_argument("--emulator-host", metavar="HOST:PORT", default=default(None),
                   help="Cloud Tasks emulator to use (overrides CLOUD_TASKS_EMULATOR_HOST)")
    p.add_argument("--project", default=default(None), help="project of short queue/location IDs")
    p.add_argument("--location", default=default(None), help="location of short queue IDs")
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _method(text: str) -> str:
    if text.upper() not in rules.HTTP_METHODS:
        raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(rules.HTTP_METHODS)}")
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudtasks", parents=[_global_options(False)],
                                     description="Manage Cloud Tasks tasks and queues (or the emulator's).")
    groups = parser.add_subparsers(dest="group", required=True, metavar="{tasks,queues}")
    common = [_global_options(True)]

    def command(sub: Any, name: str, func: Callable[[Context], None], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=common, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    tasks = groups.add_parser("tasks", help="tasks in a queue").add_subparsers(dest="command", required=True)
    p = command(tasks, "list", tasks_list, "List the tasks in QUEUE.")
    p.add_argument("queue_arg", metavar="QUEUE")
    p.add_argument("--view", choices=VIEWS, default="basic")
    p.add_argument("--page-size", type=_positive, help="tasks per API page")
    p.add_argument("--limit", type=_positive, help="stop after this many tasks")
    for name, func, text in (("describe", tasks_describe, "Show a task."),
                             ("run", tasks_run, "Dispatch a task now."),
                             ("delete", tasks_delete, "Delete a task.")):
        p = command(tasks, name, func, text)
        p.add_argument("task", metavar="TASK")
        p.add_argument("--queue", help="queue of a short task ID")
        if name == "describe":
            p.add_argument("--view", choices=VIEWS, default="basic")

    def create_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("queue_arg", metavar="QUEUE")
        p.add_argument("--id", help="task ID (default: assigned by the service)")
        p.add_argument("--method", type=_method, help="HTTP method (default POST)")
        p.add_argument("--header", action="append", default=[], metavar="KEY:VALUE")
        body = p.add_mutually_exclusive_group()
        body.add_argument("--body", metavar="TEXT")
        body.add_argument("--body-file", metavar="PATH")
        p.add_argument("--schedule-time", metavar="RFC3339")
        p.add_argument("--dispatch-deadline", metavar="DURATION", help='e.g. "600s"')

    p = command(tasks, "create-http-task", tasks_create_http, "Create a task for an HTTP worker.")
    create_options(p)
    p.add_argument("--url", required=True)
    p.add_argument("--oidc-service-account-email", metavar="EMAIL")
    p.add_argument("--oidc-token-audience", metavar="AUDIENCE")
    p.add_argument("--oauth-service-account-email", metavar="EMAIL")
    p.add_argument("--oauth-token-scope", metavar="SCOPE")
    p = command(tasks, "create-app-engine-task", tasks_create_app_engine, "Create a task for App Engine.")
    create_options(p)
    p.add_argument("--relative-uri", metavar="URI")
    p.add_argument("--routing", type=_routing, metavar="service=S,version=V,instance=I")

    queues = groups.add_parser("queues", help="queues in a location").add_subparsers(dest="command", required=True)
    p = command(queues, "list", queues_list, "List the queues in LOCATION.")
    p.add_argument("location_arg", metavar="LOCATION")
    p.add_argument("--filter", help='e.g. "state: PAUSED"')
    p = command(queues, "create", queues_create, "Create a queue.")
    p.add_argument("queue_arg", metavar="QUEUE")
    p.add_argument("--max-dispatches-per-second", type=float)
    p.add_argument("--max-concurrent-dispatches", type=int)
    p.add_argument("--max-attempts", type=int, help="-1 for unlimited")
    p.add_argument("--min-backoff", metavar="DURATION")
    p.add_argument("--max-backoff", metavar="DURATION")
    p = command(queues, "describe", queues_describe, "Show a queue.")
    p.add_argument("queue_arg", metavar="QUEUE")
    for name, method, verb in (("pause", "pause_queue", "Paused"), ("resume", "resume_queue", "Resumed"),
                               ("purge", "purge_queue", "Purged"), ("delete", "delete_queue", "Deleted")):
        p = command(queues, name, _queue_action(method, verb), f"{name.capitalize()} a queue.")
        p.add_argument("queue_arg", metavar="QUEUE")
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _api_error(exc: api_exceptions.GoogleAPICallError) -> str:
    code = exc.grpc_status_code.name if exc.grpc_status_code is not None else str(exc.code or "ERROR")
    return f"{code}: {_one_line(exc.message or str(exc))}"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0)
    ctx = Context(args, out, err)
    try:
        args.func(ctx)
        return 0
    except UsageError as exc:
        err.write(f"cloudtasks: error: {exc}\n")
        return 2
    except CliError as exc:
        err.write(f"error: {_one_line(str(exc))}\n")
    except api_exceptions.RetryError as exc:  # retried UNAVAILABLE/DEADLINE_EXCEEDED until the deadline
        cause = exc.cause
        detail = _api_error(cause) if isinstance(cause, api_exceptions.GoogleAPICallError) else _one_line(str(exc))
        err.write(f"error: {detail} (gave up after {CLI_RETRY_DEADLINE_SECONDS:g}s)\n")
    except api_exceptions.GoogleAPICallError as exc:
        err.write(f"error: {_api_error(exc)}\n")
    except auth_exceptions.DefaultCredentialsError as exc:
        err.write(f"error: credentials: {_one_line(str(exc))} (or set --emulator-host)\n")
    except BrokenPipeError:  # `cloudtasks ... | head`
        return 1
    except KeyboardInterrupt:
        err.write("error: interrupted\n")
        return 130
    except Exception as exc:  # never a traceback: a bug still reads as one line
        err.write(f"error: internal: {type(exc).__name__}: {_one_line(str(exc))}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
