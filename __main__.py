"""The quickstart stack (run by `bash scripts/quickstart.sh`): three tasks in one queue.

- `hello`: an immediate HTTP task to the sample worker; `triggers=[version]` re-runs it when the
  `version` config changes (`pulumi config set version 2 && pulumi up` replaces it).
- `later`: scheduled for `scheduleAt` (RFC3339, at most 30 days ahead). quickstart.sh sets it once
  per run (an hour ahead), so repeated `up`s see the same input. Without it the default is the next
  03:00 UTC: stable for a day; each new value replaces the task.
- `verified`: an OIDC-authenticated task to the https worker, which verifies the token against the
  emulator's JWKS.

Config (project namespace `cloudtasks-quickstart`): queue, workerUrl, secureWorkerUrl, version,
scheduleAt, serviceAccount; provider: `cloudtasks:emulatorHost` (omit it to use real GCP via ADC).
"""
from datetime import datetime, timedelta, timezone

import pulumi
from pulumi_cloudtasks import HttpRequestArgs, OidcTokenArgs, Task

config = pulumi.Config()
queue = config.get("queue") or "projects/quickstart/locations/us-central1/queues/quickstart"
worker_url = (config.get("workerUrl") or "http://127.0.0.1:8090").rstrip("/")
secure_worker_url = (config.get("secureWorkerUrl") or "https://127.0.0.1:8443").rstrip("/")
version = config.get("version") or "1"
service_account = config.get("serviceAccount") or "quickstart@quickstart.iam.gserviceaccount.com"


def next_3am_utc() -> str:
    now = datetime.now(timezone.utc)
    at = now.replace(hour=3, minute=0, second=0, microsecond=0)
    return (at if at > now else at + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


hello = Task(
    "hello",
    queue=queue,
    http_request=HttpRequestArgs(
        url=f"{worker_url}/quickstart/hello",
        http_method="POST",
        headers={"Content-Type": "application/json"},
        body='{"greeting": "hello from pulumi up"}',
    ),
    triggers=[version],
)

later = Task(
    "later",
    queue=queue,
    http_request=HttpRequestArgs(url=f"{worker_url}/quickstart/later", http_method="POST", body="{}"),
    schedule_time=config.get("scheduleAt") or next_3am_utc(),
)

verified = Task(
    "verified",
    queue=queue,
    http_request=HttpRequestArgs(
        url=f"{secure_worker_url}/quickstart/verified",
        http_method="POST",
        oidc_token=OidcTokenArgs(service_account_email=service_account),
    ),
)

for key, task in (("hello", hello), ("later", later), ("verified", verified)):
    pulumi.export(f"{key}_name", task.name)
    pulumi.export(f"{key}_status", task.status)
    pulumi.export(f"{key}_dispatch_count", task.dispatch_count)
pulumi.export("later_schedule_time", later.schedule_time)
