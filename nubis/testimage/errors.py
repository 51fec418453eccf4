"""The test image builder's exception tree."""

from __future__ import annotations

from nubis.common.errors import NubisError


class TestImageError(NubisError):
    """The test image could not be built (apt, dpkg, qemu-img or a missing module)."""

    __test__ = False  # not a pytest test class
