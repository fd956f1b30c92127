"""podwatch shared library: the contracts and the logic the relay and the Lambda functions share.

Modules:
    models      pydantic models: the SQS envelope, PodEvent, KubeEvent, Notification, RemoteConfig
    errors      the typed error hierarchy (transient vs permanent)
    ids         event ids, notification ids and Restate idempotency keys
"""

__version__ = "0.1.0"
