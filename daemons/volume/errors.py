"""The volume host's exception tree (mapped to HTTP by the volume daemon, in one place)."""

from __future__ import annotations

from nubis.common.errors import NubisError


class VolumeError(NubisError):
    """Base of every volume-host error (500 unless a subclass says otherwise)."""

    status = 500


class BadRequest(VolumeError):  # noqa: N818 (an HTTP status name)
    """The request is malformed (400)."""

    status = 400


class VolumeNotFound(VolumeError):  # noqa: N818 (Cinder's name)
    """No file exists for this volume or snapshot (404)."""

    status = 404


class VolumeExists(VolumeError):  # noqa: N818 (Cinder's name)
    """A volume file with this id already exists (409)."""

    status = 409


class InsufficientCapacity(VolumeError):  # noqa: N818 (describes the fault)
    """The volume does not fit the host's free space times the over-subscription (507)."""

    status = 507


class QemuImgError(VolumeError):
    """``qemu-img`` failed; the message carries its own text."""


class ImageFetchError(VolumeError):
    """The image could not be downloaded, or its bytes do not match its checksum."""


class ImageUploadError(VolumeError):
    """The image service refused a volume's bytes, or could not be reached."""


class BackupError(VolumeError):
    """A backup or restore failed (object store refused, a chunk is corrupt, ...)."""
