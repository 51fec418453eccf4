"""The ring package's exception tree.

Every error the ring builder, the ring file format and the ring-builder CLI raise
on purpose derives from :class:`RingError`. Messages are one line, suitable for
printing to stderr as-is.
"""

from __future__ import annotations

from nubis.common.errors import NubisError


class RingError(NubisError):  # type: ignore[misc]  # mypy cannot follow the editable nubis.* mapping
    """Base class for every ring error."""

    exit_code = 2


class RingBuilderError(RingError):
    """A builder operation was invalid or a builder file is missing/corrupt."""


class RingFileError(RingError):
    """A ring file is missing, truncated, tampered with or of an unknown version."""


class RingValidationError(RingError):
    """A builder or ring failed its consistency checks."""


class DeviceError(RingBuilderError):
    """A device description or search value is malformed or matches nothing."""
