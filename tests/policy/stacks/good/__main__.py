"""The same task, fixed: https, an OIDC token instead of the API key, autonamed, a valid deadline."""
import pulumi

from pulumi_cloudtasks import HttpRequestArgs, OidcTokenArgs, Task

queue = pulumi.Config().get("queue") or "projects/demo/locations/us-central1/queues/jobs"

Task(
    "nightly",
    queue=queue,
    http_request=HttpRequestArgs(
        url="https://worker.example.com/run",
        headers={"Content-Type": "application/json"},
        body='{"report": "nightly"}',
        oidc_token=OidcTokenArgs(service_account_email="tasks@demo.iam.gserviceaccount.com",
                                 audience="https://worker.example.com"),
    ),
    dispatch_deadline="300s",
)
