"""A faithful local emulator of the Google Cloud Tasks v2 API (gRPC and REST, with real dispatch).

Independent of pulumi: usable on its own through ``CLOUD_TASKS_EMULATOR_HOST``.
"""

import warnings

# google-api-core warns at import time that Python 3.11 support ends in 2027; not actionable here.
warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)
