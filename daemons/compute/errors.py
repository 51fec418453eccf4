"""The compute host's exception tree (mapped to HTTP by the compute daemon, in one place)."""

from __future__ import annotations

from nubis.common.errors import NubisError


class ComputeError(NubisError):
    """Base of every compute-host error."""


class HostSetupError(ComputeError):
    """libvirtd could not be brought up, or the host is not usable for guests."""


class LibvirtError(ComputeError):
    """libvirt refused an operation; the message carries libvirt's own text."""


class InstanceNotFound(ComputeError):  # noqa: N818 (Nova's name)
    """No domain (or instance directory) exists for this instance id."""


class InstanceExists(ComputeError):  # noqa: N818 (Nova's name)
    """A domain with this instance id or name is already defined."""


class ImageCacheError(ComputeError):
    """A base image could not be stored in the host's image cache."""


class ImageChecksumMismatch(ImageCacheError):  # noqa: N818 (describes the fault)
    """A base image's bytes do not hash to the expected sha512 (``os_hash_value``)."""


class DiskError(ComputeError):
    """``qemu-img`` failed to create or inspect a disk."""


class ConfigDriveError(ComputeError):
    """The config drive could not be built (bad metadata or ``genisoimage`` failed)."""


class ShutdownTimeout(ComputeError):  # noqa: N818 (describes the fault)
    """The guest did not power off within the bound after ACPI power-button presses."""
