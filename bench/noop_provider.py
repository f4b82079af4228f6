"""Floor of figure 6: a dynamic provider that does nothing (create returns its inputs), served by the
same `python -m pulumi.dynamic` server, so the SDK's per-RPC cost can be told from ours."""
from pulumi.dynamic import CheckResult, CreateResult, ResourceProvider


class NoopProvider(ResourceProvider):
    serialize_as_secret_always = False

    def check(self, _olds, news):
        return CheckResult(news, [])

    def create(self, props):
        return CreateResult("noop-" + str(props.get("__name", "x")), dict(props))
