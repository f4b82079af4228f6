"""Tasks that carry a token: OIDC (Cloud Run, Cloud Functions, your API) and OAuth (Google APIs).

Tokens are only sent to https:// URLs. With the emulator, the OIDC token is signed by the emulator
and verifiable against its JWKS (`python examples/worker.py --tls --issuer <emulator http url>`); the
OAuth token is an opaque `emulator-oauth-...` string, so point oauthUrl at a worker that does not
verify it (`--tls` without `--issuer`). On GCP, OAuth targets are `*.googleapis.com` APIs.

Config: queue, oidcUrl, oauthUrl, serviceAccount, audience.
"""
import pulumi
from pulumi_cloudtasks import HttpRequestArgs, OAuthTokenArgs, OidcTokenArgs, Task

config = pulumi.Config()
queue = config.get("queue") or "projects/demo-project/locations/us-central1/queues/examples"
service_account = config.get("serviceAccount") or "tasks-invoker@demo-project.iam.gserviceaccount.com"
oidc_url = config.get("oidcUrl") or "https://127.0.0.1:8443/private/reindex"
oauth_url = config.get("oauthUrl") or "https://127.0.0.1:8444/v1/projects/demo-project:run"

oidc = Task(
    "reindex",
    queue=queue,
    http_request=HttpRequestArgs(
        url=oidc_url,
        http_method="POST",
        headers={"Content-Type": "application/json"},
        body='{"full": true}',
        oidc_token=OidcTokenArgs(service_account_email=service_account, audience=config.get("audience")),
    ),
)

oauth = Task(
    "call-google-api",
    queue=queue,
    http_request=HttpRequestArgs(
        url=oauth_url,
        http_method="POST",
        oauth_token=OAuthTokenArgs(service_account_email=service_account),
    ),
)

pulumi.export("oidc_name", oidc.name)
pulumi.export("oidc_status", oidc.status)
pulumi.export("oauth_name", oauth.name)
pulumi.export("oauth_status", oauth.status)
