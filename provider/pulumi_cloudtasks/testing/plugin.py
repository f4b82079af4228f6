"""pytest plugin ``cloudtasks`` (entry point ``pytest11``): fixtures to test stacks that use
``pulumi_cloudtasks.Task`` against the local Cloud Tasks emulator. See ``pulumi_cloudtasks.testing``.

Fixtures: ``cloudtasks_emulator_config`` (session, override it), ``cloudtasks_emulator`` (session),
``cloudtasks_pulumi_backend`` (session: the file backend folder), ``cloudtasks_stack`` (factory).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..client import EMULATOR_ENV
from . import CloudTasksEmulator, StackFactory


@pytest.fixture(scope="session")
def cloudtasks_emulator_config() -> dict[str, Any]:
    """Options of the session's emulator (fields of ``cloudtasks_emulator.server.EmulatorConfig``).
    Override in your conftest.py, e.g. ``return {"auto_create_queues": True, "app_engine_url": URL}``."""
    return {"auto_create_queues": True}


@pytest.fixture(scope="session")
def cloudtasks_emulator(cloudtasks_emulator_config: dict[str, Any]) -> Iterator[CloudTasksEmulator]:
    """One emulator for the session (in this process, free ports). ``CLOUD_TASKS_EMULATOR_HOST``
    points at it while it runs, so clients, the ``cloudtasks`` CLI and stacks started from here use it."""
    from cloudtasks_emulator.testing import run_emulator

    config = dict(cloudtasks_emulator_config)
    config.setdefault("auto_create_queues", True)
    previous = os.environ.get(EMULATOR_ENV)
    with run_emulator(in_process=True, **config) as handle:
        os.environ[EMULATOR_ENV] = handle.grpc_target
        try:
            yield CloudTasksEmulator(handle.grpc_target, handle.http_url, handle)
        finally:
            if previous is None:
                os.environ.pop(EMULATOR_ENV, None)
            else:
                os.environ[EMULATOR_ENV] = previous


@pytest.fixture(scope="session")
def cloudtasks_pulumi_backend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local file backend (``file://`` folder) of the session's ephemeral stacks."""
    return tmp_path_factory.mktemp("pulumi-backend")


@pytest.fixture
def cloudtasks_stack(cloudtasks_emulator: CloudTasksEmulator, cloudtasks_pulumi_backend: Path) -> Iterator[StackFactory]:
    """Factory of ephemeral stacks against the emulator:
    ``stack = cloudtasks_stack(program_dir, config={...}, secrets={...})`` returns a
    ``pulumi.automation.Stack``; every stack made is destroyed and removed after the test."""
    factory = StackFactory(cloudtasks_pulumi_backend, cloudtasks_emulator)
    yield factory
    factory.cleanup()
