"""With --data-dir, acknowledged changes survive kill -9 and pending tasks resume dispatch."""
from __future__ import annotations

import pytest
from emu_helpers import LOCATION, QUEUE, task_gone, wait_until
from google.api_core import exceptions
from google.cloud import tasks_v2

from cloudtasks_emulator.testing import make_client, run_emulator

pytestmark = pytest.mark.slow


def test_state_survives_kill_9_and_pending_tasks_resume(tmp_path, worker):
    data_dir = str(tmp_path / "data")
    other = f"{LOCATION}/queues/second"
    with run_emulator(in_process=False, data_dir=data_dir, queues=[QUEUE]) as emu:
        client = make_client(emu.grpc_target)
        done = client.create_task(parent=QUEUE, task={"http_request": {"url": f"{worker.url}/before"}})
        worker.wait_for(1)
        wait_until(lambda: task_gone(client, done.name), message="first task completed")
        client.pause_queue(name=QUEUE)
        client.create_queue(parent=LOCATION, queue={"name": other, "retry_config": {"max_attempts": 7}})
        pending = [client.create_task(parent=QUEUE, task={"name": f"{QUEUE}/tasks/p{i}",
                                                          "http_request": {"url": f"{worker.url}/after"}}).name
                   for i in range(4)]
        client.create_task(parent=QUEUE, task={"name": f"{QUEUE}/tasks/deleted", "http_request": {"url": worker.url}})
        client.delete_task(name=f"{QUEUE}/tasks/deleted")
        emu.kill()

    with run_emulator(in_process=False, data_dir=data_dir) as emu:
        client = make_client(emu.grpc_target)
        assert client.get_queue(name=QUEUE).state == tasks_v2.Queue.State.PAUSED
        assert client.get_queue(name=other).retry_config.max_attempts == 7
        assert sorted(t.name for t in client.list_tasks(parent=QUEUE)) == pending
        with pytest.raises(exceptions.AlreadyExists):  # the reservation survived too
            client.create_task(parent=QUEUE, task={"name": f"{QUEUE}/tasks/deleted", "http_request": {"url": worker.url}})
        client.resume_queue(name=QUEUE)
        worker.wait_for(5)
        wait_until(lambda: not list(client.list_tasks(parent=QUEUE)), message="pending tasks delivered")
        assert [r.path for r in worker.requests] == ["/before"] + ["/after"] * 4  # the completed one never again


def test_cli_prints_one_ready_line_and_stops_cleanly_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "cloudtasks_emulator", "start", "--port", "0",
                                "--http-port", "0", "--queue", QUEUE, "--name-reservation", "30m"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("export CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:")
        target = line.strip().split("=", 1)[1]
        assert make_client(target).get_queue(name=QUEUE).name == QUEUE
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout.read() == ""  # exactly one line
    finally:
        if process.poll() is None:
            process.kill()
