"""The pulumi-cloudtasks policy pack: `pulumi preview --policy-pack policy [--policy-pack-config f]`.

The rules live in `pulumi_cloudtasks.policy` (importable and tested there); this file only builds
the PolicyPack, which serves the analyzer the CLI talks to.
"""
import warnings

# google-api-core warns about the Python version on import; keep the analyzer's stderr clean.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\..*")

from pulumi_cloudtasks.policy import build_pack  # noqa: E402

build_pack(description="Guardrails for Google Cloud Tasks tasks managed with pulumi-cloudtasks")
