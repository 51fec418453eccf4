"""The probe suite's one whole cloud with a compute host and the test image.

Defined here (not in each package's conftest) so the compute, network and
``nubis up`` probes share a single session cloud: each conftest defining the
fixture would start its own.
"""

from tests.probe.compute.cloud import compute  # noqa: F401 (the session cloud fixture)
