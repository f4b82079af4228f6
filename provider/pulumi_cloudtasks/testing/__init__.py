"""Test your own stacks that use ``pulumi_cloudtasks.Task`` against the local emulator.

Installed with the package as the pytest plugin ``cloudtasks`` (entry point ``pytest11``); the
fixtures live in ``pulumi_cloudtasks.testing.plugin``:

- ``cloudtasks_emulator`` (session): a running emulator (in this process, free ports, queues are
  created on first use); ``CLOUD_TASKS_EMULATOR_HOST`` is set for the session. Override the
  ``cloudtasks_emulator_config`` fixture to pass emulator options (``app_engine_url``, ``queues`` ...).
- ``cloudtasks_stack`` (function): ``cloudtasks_stack(program_dir, config={...}, secrets={...})`` makes
  an ephemeral stack of your program (Automation API ``LocalWorkspace``, a local file backend in a
  temporary folder, a passphrase, ``cloudtasks:emulatorHost`` set to the emulator) and destroys and
  removes it after the test.

    def test_my_stack(cloudtasks_stack):
        stack = cloudtasks_stack("infra/", config={"workerUrl": "http://127.0.0.1:8090"})
        assert stack.up().summary.resource_changes["create"] == 2

The real Pulumi CLI must be on PATH (``scripts/setup.sh`` puts the pinned one there).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar

from ..client import CONFIG_KEY as EMULATOR_HOST_CONFIG

T = TypeVar("T")

DEFAULT_PASSPHRASE = "pulumi-cloudtasks-tests"


def wait_for(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.1,
             message: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message}: not met within {timeout:g} s")
        time.sleep(interval)


@dataclass
class CloudTasksEmulator:
    """A running emulator: ``host`` (gRPC ``host:port``, what ``cloudtasks:emulatorHost`` takes),
    ``http_url`` (REST and OIDC discovery), and a client for checks."""
    host: str
    http_url: Optional[str]
    handle: Any = field(repr=False, default=None)
    _client: Any = field(repr=False, default=None)

    @property
    def client(self) -> Any:
        """An unmodified ``google.cloud.tasks_v2.CloudTasksClient`` talking to this emulator."""
        if self._client is None:
            from cloudtasks_emulator.testing import make_client
            self._client = make_client(self.host)
        return self._client

    def list_tasks(self, queue: str) -> list[Any]:
        """The tasks in ``queue`` (full name) right now."""
        return list(self.client.list_tasks(parent=queue))

    def task_exists(self, name: str) -> bool:
        from google.api_core import exceptions
        try:
            self.client.get_task(name=name)
            return True
        except exceptions.NotFound:
            return False


class StackFactory:
    """``cloudtasks_stack(program_dir, config=None, secrets=None, stack_name=None, env=None)``."""

    def __init__(self, backend_dir: Path, emulator: Optional[CloudTasksEmulator],
                 passphrase: str = DEFAULT_PASSPHRASE) -> None:
        self.backend_dir = Path(backend_dir)
        self.emulator = emulator
        self.passphrase = passphrase
        self.stacks: list[Any] = []

    def __call__(self, program_dir: str | os.PathLike[str], config: Optional[Mapping[str, Any]] = None,
                 secrets: Optional[Mapping[str, Any]] = None, stack_name: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None) -> Any:
        """A new stack of the Pulumi project in ``program_dir`` (its Pulumi.yaml decides the runtime
        and virtualenv). ``config`` keys without a namespace belong to the project; ``secrets`` are
        set as secret config. Returns a ``pulumi.automation.Stack``."""
        from pulumi import automation as auto

        program_dir = Path(program_dir).resolve()
        if not (program_dir / "Pulumi.yaml").is_file() and not (program_dir / "Pulumi.yml").is_file():
            raise FileNotFoundError(f"{program_dir} has no Pulumi.yaml")
        env_vars = {
            "PULUMI_BACKEND_URL": self.backend_dir.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            **(env or {}),
        }
        name = stack_name or f"test-{os.urandom(4).hex()}"
        stack = auto.create_stack(name, work_dir=str(program_dir),
                                  opts=auto.LocalWorkspaceOptions(work_dir=str(program_dir), env_vars=env_vars))
        self.stacks.append(stack)
        values: dict[str, auto.ConfigValue] = {}
        if self.emulator is not None:
            values[EMULATOR_HOST_CONFIG] = auto.ConfigValue(self.emulator.host)
        for key, value in (config or {}).items():
            values[key] = auto.ConfigValue(_config_text(value))
        for key, value in (secrets or {}).items():
            values[key] = auto.ConfigValue(_config_text(value), secret=True)
        if values:
            stack.set_all_config(values)
        return stack

    def state_file(self, stack: Any) -> Path:
        """The file backend's checkpoint of ``stack`` (JSON; secrets in it are ciphertext)."""
        found = sorted(self.backend_dir.glob(f".pulumi/stacks/**/{stack.name}.json"))
        if not found:
            raise FileNotFoundError(f"no state file for stack {stack.name} under {self.backend_dir}")
        return found[0]

    def resources(self, stack: Any) -> dict[str, dict[str, Any]]:
        """The stack's resources from ``pulumi stack export``, by resource name (urn's last part)."""
        deployment = stack.export_stack().deployment or {}
        return {r["urn"].rsplit("::", 1)[1]: r for r in deployment.get("resources", [])}

    def cleanup(self) -> None:
        """Destroy and remove every stack made by this factory (errors raised after all are tried)."""
        errors: list[BaseException] = []
        for stack in reversed(self.stacks):
            try:
                if self._has_resources(stack):  # skip a CLI run for stacks already destroyed or never up
                    stack.destroy()
            except Exception as exc:  # still remove it, then report
                errors.append(exc)
            try:
                stack.workspace.remove_stack(stack.name, force=True)
            except Exception as exc:
                errors.append(exc)
        self.stacks.clear()
        if errors:
            raise errors[0]


    def _has_resources(self, stack: Any) -> bool:
        try:
            checkpoint = json.loads(self.state_file(stack).read_text())
        except (FileNotFoundError, ValueError):
            return True  # unknown: let destroy decide
        latest = (checkpoint.get("checkpoint") or {}).get("latest") or {}
        return bool(latest.get("resources")) or bool(latest.get("pending_operations"))


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


__all__ = ["CloudTasksEmulator", "StackFactory", "wait_for", "EMULATOR_HOST_CONFIG"]
