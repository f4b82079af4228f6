"""A real GCP queue (pulumi-gcp) and tasks in it. For real GCP only: needs a project with the Cloud
Tasks API enabled and Application Default Credentials (`gcloud auth application-default login`).

    pulumi config set gcp:project my-project
    pulumi config set gcp:region us-central1
    pulumi config set workerUrl https://my-service-xyz-uc.a.run.app
    pulumi config set invoker tasks-invoker@my-project.iam.gserviceaccount.com
    pulumi up

`queue.id` is the full queue name (projects/P/locations/L/queues/Q), exactly what Task expects, and
makes the tasks depend on the queue (created after it, deleted before it).
"""
import pulumi
import pulumi_gcp as gcp
from pulumi_cloudtasks import HttpRequestArgs, OidcTokenArgs, Task

config = pulumi.Config()
gcp_config = pulumi.Config("gcp")
worker_url = config.require("workerUrl").rstrip("/")
invoker = config.require("invoker")
location = config.get("location") or gcp_config.get("region") or "us-central1"

queue = gcp.cloudtasks.Queue(
    "jobs",
    location=location,
    rate_limits=gcp.cloudtasks.QueueRateLimitsArgs(max_dispatches_per_second=5, max_concurrent_dispatches=10),
    retry_config=gcp.cloudtasks.QueueRetryConfigArgs(max_attempts=5, min_backoff="1s", max_backoff="60s"),
)

reindex = Task(
    "reindex",
    queue=queue.id,
    http_request=HttpRequestArgs(
        url=f"{worker_url}/reindex",
        http_method="POST",
        headers={"Content-Type": "application/json"},
        body='{"full": true}',
        oidc_token=OidcTokenArgs(service_account_email=invoker),
    ),
    dispatch_deadline="900s",
)

warmup = Task(
    "warmup",
    queue=queue.id,
    http_request=HttpRequestArgs(url=f"{worker_url}/warmup", http_method="GET",
                                 oidc_token=OidcTokenArgs(service_account_email=invoker)),
)

pulumi.export("queue", queue.id)
pulumi.export("reindex_name", reindex.name)
pulumi.export("warmup_name", warmup.name)
