"""A faithful local emulator of the Google Cloud Tasks v2 API (gRPC and REST, with real dispatch).

Independent of pulumi: usable on its own through ``CLOUD_TASKS_EMULATOR_HOST``.
"""
