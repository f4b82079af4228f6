"""Assembles the emulator: store, service, dispatcher, gRPC server and (when present) the HTTP server."""
from __future__ import annotations

import ipaddress
import logging
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import grpc
import yaml

from .core import messages as m
from .core import rules
from .core.clock import Clock, SystemClock
from .core.dispatcher import Dispatcher
from .core.service import CloudTasksService
from .core.store import Store
from . import handler_pool
from .grpc_api import generic_handler

log = logging.getLogger("cloudtasks_emulator")


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8123  # gRPC; 0 picks a free port
    http_port: int | None = 8124  # REST + OIDC discovery; 0 picks a free port, None disables
    data_dir: str | None = None  # None: a temporary database, gone at stop
    queues: list[str] = field(default_factory=list)  # full queue names created at start
    config_file: str | None = None  # YAML: {queues: [{name, rate_limits, retry_config, state}]}
    auto_create_queues: bool = False
    name_reservation: float = rules.DEFAULT_NAME_RESERVATION_SECONDS
    app_engine_url: str = "http://127.0.0.1:8080"
    clock: Clock | None = None
    # gRPC handlers computing at once (see handler_pool: more only trade the GIL back and forth;
    # handlers waiting on an injected latency do not count).
    grpc_workers: int = handler_pool.DEFAULT_RUNNABLE
    dispatch_workers: int = 100
    faults: Any | None = None  # a FaultInjector (before_call/after_commit); default: one with no rules


def load_queue_config(path: str) -> list[Any]:
    """Queues from a ``--config`` YAML file (see ``messages.queue_from_config`` for the shape)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    entries = data.get("queues", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'queues' must be a list")
    return [m.queue_from_config(entry) for entry in entries]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmulatorServer:
    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock: Clock = self.config.clock or SystemClock()
        self.store: Store | None = None
        self.service: CloudTasksService | None = None
        self.dispatcher: Dispatcher | None = None
        self.oidc: Any | None = None
        self.faults: Any | None = None
        self._grpc: grpc.Server | None = None
        self._handlers: handler_pool.HandlerPool | None = None
        self._http: Any | None = None
        self.port = 0

    @property
    def grpc_target(self) -> str:
        return f"{self._display_host()}:{self.port}"

    @property
    def http_url(self) -> str | None:
        return f"http://{self._display_host()}:{self._http.port}" if self._http is not None else None

    def _display_host(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host

    def start(self) -> "EmulatorServer":
        config = self.config
        if not _is_loopback(config.host):
            print(f"WARNING: cloudtasks-emulator is listening on {config.host}, not loopback: it has no "
                  "authentication; anyone who can reach this port can read and run your tasks.",
                  file=sys.stderr, flush=True)
        queues = load_queue_config(config.config_file) if config.config_file else []
        self.store = Store(config.data_dir)
        self.oidc = self._make_oidc()
        self.faults = config.faults if config.faults is not None else self._make_faults()
        ae_host = urlsplit(config.app_engine_url).netloc
        self.service = CloudTasksService(
            self.store, self.clock, faults=self.faults, name_reservation=config.name_reservation,
            auto_create_queues=config.auto_create_queues, app_engine_host=ae_host)
        self._seed_queues(config.queues, queues)
        self.dispatcher = Dispatcher(self.store, self.clock, oidc=self.oidc, app_engine_url=config.app_engine_url,
                                     workers=config.dispatch_workers, name_reservation=config.name_reservation)
        self.service.dispatcher = self.dispatcher
        self.dispatcher.start()
        self._handlers = handler_pool.HandlerPool(config.grpc_workers)
        self._grpc = grpc.server(self._handlers, options=[("grpc.so_reuseport", 0)])
        self._grpc.add_generic_rpc_handlers((generic_handler(self.service),))
        bind_host = f"[{config.host}]" if ":" in config.host else config.host
        try:
            self.port = self._grpc.add_insecure_port(f"{bind_host}:{config.port}")
        except RuntimeError:  # grpcio reports a taken port this way
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot bind gRPC to {config.host}:{config.port} (is the port in use?)")
        self._grpc.start()
        self._start_http()
        log.info("gRPC on %s, HTTP on %s, data in %s", self.grpc_target, self.http_url, self.store.path)
        return self

    def _make_oidc(self) -> Any | None:
        try:
            from .core.oidc import OidcSigner
        except ImportError:
            log.warning("core.oidc is missing: OIDC tokens will not be sent")
            return None
        return OidcSigner(self.config.data_dir)

    @staticmethod
    def _make_faults() -> Any | None:
        """A disabled injector, so faults can be switched on later through the HTTP admin endpoint."""
        try:
            from .core.faults import FaultInjector
        except ImportError:
            return None
        return FaultInjector()

    def _seed_queues(self, names: list[str], configured: list[Any]) -> None:
        """--queue names and --config queues exist at start; config values win over stored ones."""
        assert self.service is not None and self.store is not None
        for name in names:
            if self.store.get_queue(name) is None:
                self.service.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=m.Queue(name=name)))
        for queue in configured:
            self.service.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=queue))
            if queue.state == m.QUEUE_STATE.Value("PAUSED"):
                self.service.pause_queue(m.tasks_v2.PauseQueueRequest.pb()(name=queue.name))

    def _start_http(self) -> None:
        if self.config.http_port is None:
            return
        try:
            from .http_server import HttpServer
        except ImportError:
            log.warning("http_server is missing: REST and OIDC discovery are not served")
            return
        self._http = HttpServer(self.service, self.config.host, self.config.http_port, self.oidc, self.faults)
        self._http.start()
        if self.oidc is not None:
            self.oidc.issuer = self.http_url

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None
        if self._handlers is not None:
            self._handlers.shutdown(wait=False)  # a handler stuck in an injected delay must not hold up stop
            self._handlers = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
