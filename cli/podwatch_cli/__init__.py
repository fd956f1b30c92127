"""`podwatch`: the operator CLI of a podwatch stack (remote config, DLQs, status).

Not part of the Lambda layer: it runs on an operator's machine (or CI) with boto3 and the shared
models (`podwatch.models.RemoteConfig`, for the same validation the functions apply).
"""

__version__ = "0.1.0"
