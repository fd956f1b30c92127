"""A protocol-faithful fake Kubernetes API server (server.py) and raw object builders (pods.py)
for the relay's tests."""

from tests.fakeapi.server import FakeKubeApi

__all__ = ["FakeKubeApi"]
