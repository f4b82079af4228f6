"""A task scheduled for later. `refresh` shows `status: scheduled` until it runs; `destroy` before
then deletes it, so it never runs.

Config: queue, workerUrl, scheduleAt (RFC3339, at most 30 days ahead). Without scheduleAt the task
runs at the next 03:00 UTC — that default moves once a day, and every change of schedule_time
replaces the task, so set scheduleAt to keep the stack stable.
"""
from datetime import datetime, timedelta, timezone

import pulumi
from pulumi_cloudtasks import HttpRequestArgs, Task

config = pulumi.Config()
queue = config.get("queue") or "projects/demo-project/locations/us-central1/queues/examples"
worker_url = config.get("workerUrl") or "http://127.0.0.1:8090"


def next_3am_utc() -> str:
    now = datetime.now(timezone.utc)
    at = now.replace(hour=3, minute=0, second=0, microsecond=0)
    return (at if at > now else at + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


task = Task(
    "nightly-report",
    queue=queue,
    http_request=HttpRequestArgs(url=f"{worker_url.rstrip('/')}/reports/nightly", http_method="POST",
                                 body='{"report": "nightly"}'),
    schedule_time=config.get("scheduleAt") or next_3am_utc(),
    dispatch_deadline="900s",
)

pulumi.export("name", task.name)
pulumi.export("task_id", task.task_id)
pulumi.export("schedule_time", task.schedule_time)
pulumi.export("status", task.status)
