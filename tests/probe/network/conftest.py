"""The session's whole cloud (with a compute host and the test image) for guest tests."""

from tests.probe.compute.cloud import compute  # noqa: F401 (the session cloud fixture)
