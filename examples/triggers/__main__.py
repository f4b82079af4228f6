"""Re-run a job when a version changes. A task that ran stays in the stack (`status: gone`) and
`pulumi up` does not enqueue it again; changing `triggers` is the explicit way to re-run it: the
task is replaced, under a new name, and runs once more.

    pulumi config set version 2 && pulumi up    # enqueues the migration again

Config: queue, workerUrl, version.
"""
import pulumi
from pulumi_cloudtasks import HttpRequestArgs, Task

config = pulumi.Config()
queue = config.get("queue") or "projects/demo-project/locations/us-central1/queues/examples"
worker_url = config.get("workerUrl") or "http://127.0.0.1:8090"
version = config.get("version") or "1"

migrate = Task(
    "migrate",
    queue=queue,
    http_request=HttpRequestArgs(url=f"{worker_url.rstrip('/')}/migrate", http_method="POST",
                                 body='{"job": "migrate"}'),
    triggers=[version],
)

pulumi.export("name", migrate.name)
pulumi.export("task_id", migrate.task_id)
pulumi.export("status", migrate.status)
pulumi.export("version", version)
