"""Fixtures for emulator tests: a started emulator, the unmodified client, and a scriptable worker."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from emu_helpers import QUEUE, Worker

from cloudtasks_emulator.core.clock import ManualClock
from cloudtasks_emulator.testing import EmulatorHandle, make_client, run_emulator


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.stop()


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(queues=[QUEUE], http_port=None) as handle:
        yield handle


@pytest.fixture
def manual_emulator() -> Iterator[EmulatorHandle]:
    """An emulator whose clock only moves when the test advances it."""
    with run_emulator(queues=[QUEUE], http_port=None, clock=ManualClock()) as handle:
        yield handle


@pytest.fixture
def client(emulator: EmulatorHandle) -> Any:
    return make_client(emulator.grpc_target)


@pytest.fixture
def manual_client(manual_emulator: EmulatorHandle) -> Any:
    return make_client(manual_emulator.grpc_target)
