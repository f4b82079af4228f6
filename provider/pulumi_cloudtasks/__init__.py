"""Google Cloud Tasks tasks as Pulumi resources (a dynamic provider).

    from pulumi_cloudtasks import Task, HttpRequestArgs
    Task("reindex", queue=queue.id, http_request=HttpRequestArgs(url="https://api.example.com/reindex"))

The field model shared with the CLI and the policy pack is ``pulumi_cloudtasks.spec``.
"""
import warnings

# google-api-core warns at import time that Python 3.11 support ends in 2027: noise in every CLI
# error line and provider log, and nothing a user of this package can act on.
warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)

from .task import (TASK_TYPE_TOKEN, AppEngineHttpRequestArgs, AppEngineRoutingArgs, HttpMethod,
                   HttpRequestArgs, OAuthTokenArgs, OidcTokenArgs, Task, TaskArgs)

__all__ = ["Task", "TaskArgs", "HttpRequestArgs", "AppEngineHttpRequestArgs", "AppEngineRoutingArgs",
           "OAuthTokenArgs", "OidcTokenArgs", "HttpMethod", "TASK_TYPE_TOKEN"]
