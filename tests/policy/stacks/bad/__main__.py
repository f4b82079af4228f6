"""One bad task: plain http, no token, a static API key header, an explicit task_id; check accepts it."""
import pulumi

from pulumi_cloudtasks import HttpRequestArgs, Task

queue = pulumi.Config().get("queue") or "projects/demo/locations/us-central1/queues/jobs"

Task(
    "nightly",
    queue=queue,
    task_id="nightly-report",
    http_request=HttpRequestArgs(
        url="http://worker.example.com/run",
        headers={"Content-Type": "application/json", "X-Api-Key": pulumi.Output.secret("k-TOPSECRET-42")},
        body='{"report": "nightly"}',
    ),
    dispatch_deadline="900s",  # within the service limit; a policy config can tighten it
)
