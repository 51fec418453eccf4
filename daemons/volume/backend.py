"""Volumes as qcow2 files in one directory, as Cinder's file-based (RemoteFS) drivers keep them.

A volume is ``volume-<id>`` (qcow2); its snapshots are internal qcow2 snapshots
``snapshot-<id>`` of that file (``qemu-img snapshot``), so a volume made from a
snapshot is a ``qemu-img convert -l snapshot.name=...`` of it. Every new file is
written as ``<name>.part`` and renamed when complete, so a crash leaves either
the whole volume or a ``.part`` that :meth:`FileBackend.reconcile` removes. Ids
are checked to be UUIDs before they become file names.

The capacity reported is the filesystem's real size and free space; a volume
fits while the sum of the volumes' sizes stays within ``total *
max_over_subscription_ratio`` and the free space stays above the reserve.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nubis.daemons.volume import online, qemuimg
from nubis.daemons.volume.errors import (
    BadRequest,
    ImageFetchError,
    InsufficientCapacity,
    QemuImgError,
    VolumeExists,
    VolumeNotFound,
)

LOG = logging.getLogger("nubis.volume")
GiB = qemuimg.GiB
#: Bytes of a raw image converted into the volume at a time while the rest downloads.
SEGMENT = 128 * 1024 * 1024
_IMAGE_FORMATS = ("qcow2", "raw")


def canonical(ident: str) -> str:
    """Return ``ident`` as a canonical UUID string, or raise BadRequest."""
    try:
        return str(uuid.UUID(ident))
    except (ValueError, TypeError, AttributeError):
        raise BadRequest(f"not a UUID: {ident!r}") from None


@dataclass(frozen=True)
class Capacity:
    """What the host can hold, in GiB (Cinder's pool stats)."""

    total_gb: float
    free_gb: float
    provisioned_gb: int
    max_over_subscription_ratio: float
    reserved_percentage: int

    @property
    def virtual_free_gb(self) -> float:
        """Return the GiB still promisable to new volumes."""
        return self.total_gb * self.max_over_subscription_ratio - self.provisioned_gb


@dataclass(frozen=True)
class ImageSource:
    """An image to fill a new volume from: where to read it and what it must hash to."""

    url: str
    token: str
    disk_format: str
    sha512: str


class FileBackend:
    """The qcow2 files of one host (blocking; the HTTP layer calls it from threads)."""

    def __init__(self, root: Path, ratio: float = 20.0, reserved_percentage: int = 0,
                 timeout: float = 600.0) -> None:
        self.root = root
        self.ratio = ratio
        self.reserved_percentage = reserved_percentage
        self.timeout = timeout
        self._lock = threading.Lock()

    # --- paths and inventory ------------------------------------------------------------

    def setup(self) -> None:
        """Create the volume directory (searchable by QEMU's user, which opens the files)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)

    def path(self, volume_id: str) -> Path:
        """Return the file of a volume."""
        return self.root / f"volume-{canonical(volume_id)}"

    def existing(self, volume_id: str) -> Path:
        """Return the file of a volume that exists, else raise VolumeNotFound."""
        path = self.path(volume_id)
        if not path.exists():
            raise VolumeNotFound(f"volume {volume_id} has no file on this host")
        return path

    def volumes(self) -> dict[str, dict[str, object]]:
        """Return every complete volume: size in GiB and its snapshots' ids."""
        out: dict[str, dict[str, object]] = {}
        for path in sorted(self.root.glob("volume-*")):
            if path.name.endswith(".part"):
                continue
            try:
                doc = qemuimg.info(path)
            except QemuImgError as exc:
                LOG.warning("unreadable volume file %s: %s", path, exc)
                continue
            snaps = [str(s["name"]).removeprefix("snapshot-")
                     for s in doc.get("snapshots") or []]
            out[path.name.removeprefix("volume-")] = {
                "size": int(doc["virtual-size"]) // GiB, "snapshots": snaps,
                "allocated": path.stat().st_blocks * 512}
        return out

    def capacity(self) -> Capacity:
        """Return the filesystem's real space and what the volumes promise."""
        st = os.statvfs(self.root)
        provisioned = 0
        for path in self.root.glob("volume-*"):
            try:
                provisioned += -(-qemuimg.virtual_size(path, "qcow2") // GiB)
            except QemuImgError:
                continue
        return Capacity(st.f_blocks * st.f_frsize / GiB, st.f_bavail * st.f_frsize / GiB,
                        provisioned, self.ratio, self.reserved_percentage)

    def _check_fits(self, size_gb: int) -> None:
        cap = self.capacity()
        reserve = cap.total_gb * cap.reserved_percentage / 100
        if size_gb > cap.virtual_free_gb or cap.free_gb <= reserve:
            raise InsufficientCapacity(
                f"Insufficient free space for volume creation: requested {size_gb} GiB, "
                f"{max(cap.virtual_free_gb, 0):.0f} GiB can be provisioned "
                f"({cap.free_gb:.1f} GiB free of {cap.total_gb:.1f} GiB, "
                f"over-subscription ratio {cap.max_over_subscription_ratio:g})")

    def reconcile(self) -> list[str]:
        """Remove half-written files left by a crash; return their names."""
        removed = []
        for path in self.root.glob("*.part"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    # --- volume life cycle -----------------------------------------------------------------

    def _new(self, volume_id: str, size_gb: int) -> tuple[Path, Path]:
        if size_gb < 1:
            raise BadRequest(f"volume size must be at least 1 GiB, got {size_gb}")
        final = self.path(volume_id)
        if final.exists():
            raise VolumeExists(f"volume {volume_id} already exists on this host")
        with self._lock:
            self._check_fits(size_gb)
        return final, final.with_name(final.name + ".part")

    def _finish(self, part: Path, final: Path, size_gb: int) -> None:
        if qemuimg.virtual_size(part, "qcow2") < size_gb * GiB:
            qemuimg.resize(part, size_gb)
        part.rename(final)

    def create(self, volume_id: str, size_gb: int) -> None:
        """Create an empty volume."""
        final, part = self._new(volume_id, size_gb)
        try:
            qemuimg.create(part, size_gb)
            part.rename(final)
        finally:
            part.unlink(missing_ok=True)

    def clone(self, volume_id: str, size_gb: int, source_id: str,
              snapshot_id: str | None = None) -> None:
        """Create a volume as a full copy of another volume (or of one of its snapshots)."""
        src = self.existing(source_id)
        final, part = self._new(volume_id, size_gb)
        snap = None if snapshot_id is None else f"snapshot-{canonical(snapshot_id)}"
        try:
            # -U: the source may be open in a running guest (a snapshot never changes)
            qemuimg.convert(src, part, "qcow2", snapshot=snap, force_share=True)
            self._check_size(part, size_gb)
            self._finish(part, final, size_gb)
        finally:
            part.unlink(missing_ok=True)

    def from_image(self, volume_id: str, size_gb: int, image: ImageSource) -> None:
        """Create a volume from an image: download, verify its sha512, convert to qcow2."""
        if image.disk_format not in _IMAGE_FORMATS:
            raise BadRequest(f"Image disk format {image.disk_format} is not supported "
                             f"(supported: {', '.join(_IMAGE_FORMATS)})")
        final, part = self._new(volume_id, size_gb)
        download = final.with_name(final.name + ".image.part")
        try:
            if image.disk_format == "raw":
                self._stream_raw(image, download, part, size_gb)
            else:
                self._download(image, download)
                qemuimg.convert(download, part, image.disk_format)
                self._check_size(part, size_gb)
            self._finish(part, final, size_gb)
        finally:
            download.unlink(missing_ok=True)
            part.unlink(missing_ok=True)

    def _stream_raw(self, image: ImageSource, download: Path, part: Path,
                    size_gb: int) -> None:
        """Fill the new qcow2 ``part`` from a raw image while it downloads.

        PERF (python -m nubis.bench volume): every ``SEGMENT`` bytes that have
        arrived are converted into the same range of the volume by one
        ``qemu-img convert`` (in a second thread) while the next segment
        downloads, so the volume is ready a segment after the last byte instead
        of a whole conversion later. The sha512 is still checked over every byte
        before the volume exists.
        """
        limit = size_gb * GiB
        qemuimg.create(part, size_gb)
        digest = hashlib.sha512()
        converted = written = 0
        req = urllib.request.Request(image.url, headers={"X-Auth-Token": image.token})
        with ThreadPoolExecutor(1, thread_name_prefix="convert") as pool:
            job: Future[None] | None = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp, \
                        download.open("wb") as out:
                    while chunk := resp.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                        written += len(chunk)
                        if written > limit:
                            raise BadRequest(f"Image virtual size is larger than the "
                                             f"volume ({size_gb}GB).")
                        if written - converted >= SEGMENT:
                            out.flush()
                            if job is not None:
                                job.result()
                            job = pool.submit(qemuimg.convert_range, download, part,
                                              converted, SEGMENT)
                            converted += SEGMENT
                    tail = -(-written // 512) * 512  # qemu reads raw files in sectors
                    out.truncate(tail)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                raise ImageFetchError(f"image download failed: {exc}") from None
            finally:
                if job is not None:
                    job.result()
        if image.sha512 and digest.hexdigest() != image.sha512:
            raise ImageFetchError("image data does not match its os_hash_value (sha512)")
        if tail > converted:
            qemuimg.convert_range(download, part, converted, tail - converted)

    @staticmethod
    def _check_size(path: Path, size_gb: int) -> None:
        size = qemuimg.virtual_size(path, "qcow2")
        if size > size_gb * GiB:
            raise BadRequest(f"Image virtual size is {-(-size // GiB)}GB and doesn't fit "
                             f"in a volume of size {size_gb}GB.")

    def _download(self, image: ImageSource, dest: Path) -> None:
        digest = hashlib.sha512()
        req = urllib.request.Request(image.url, headers={"X-Auth-Token": image.token})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp, \
                    dest.open("wb") as out:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise ImageFetchError(f"image download failed: {exc}") from None
        if image.sha512 and digest.hexdigest() != image.sha512:
            raise ImageFetchError("image data does not match its os_hash_value (sha512)")

    def delete(self, volume_id: str) -> None:
        """Delete a volume's file with its snapshots (idempotent)."""
        self.path(volume_id).unlink(missing_ok=True)

    def extend(self, volume_id: str, size_gb: int) -> None:
        """Grow a volume to ``size_gb`` GiB (400 when that is not larger)."""
        path = self.existing(volume_id)
        current = qemuimg.virtual_size(path, "qcow2")
        if size_gb * GiB <= current:
            raise BadRequest(f"New size for extend must be greater than current size. "
                             f"(current: {current // GiB}, extended: {size_gb}).")
        with self._lock:
            self._check_fits(size_gb - current // GiB)
        if not online.resize(path, size_gb * GiB):  # attached to a running guest: live
            qemuimg.resize(path, size_gb)

    def snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Take a snapshot of a volume (an internal qcow2 snapshot; live when in use)."""
        path, name = self.existing(volume_id), f"snapshot-{canonical(snapshot_id)}"
        if not online.snapshot(path, name):
            qemuimg.snapshot_create(path, name)

    def revert(self, volume_id: str, snapshot_id: str) -> None:
        """Revert a detached volume to one of its snapshots (Cinder's revert-to-snapshot).

        The snapshot stays. The file must not be open in a guest: the API only
        reverts an ``available`` volume.
        """
        path, name = self.existing(volume_id), f"snapshot-{canonical(snapshot_id)}"
        if name not in qemuimg.snapshots(path):
            raise VolumeNotFound(f"volume {volume_id} has no snapshot {snapshot_id}")
        qemuimg.snapshot_apply(path, name)

    def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Delete a snapshot, merging its clusters back (idempotent)."""
        path = self.path(volume_id)
        name = f"snapshot-{canonical(snapshot_id)}"
        if (path.exists() and name in qemuimg.snapshots(path)
                and not online.delete_snapshot(path, name)):
            qemuimg.snapshot_delete(path, name)

    def export_raw(self, volume_id: str, dest: Path, force: bool = False) -> None:
        """Write a volume's guest-visible bytes to a sparse raw file."""
        qemuimg.convert(self.existing(volume_id), dest, "qcow2", "raw", force_share=force)

    def replace_from_raw(self, volume_id: str, raw: Path, size_gb: int) -> None:
        """Replace a volume's contents with a raw file's (restore), keeping its size."""
        final = self.path(volume_id)
        part = final.with_name(final.name + ".part")
        try:
            qemuimg.convert(raw, part, "raw")
            self._finish(part, final, size_gb)
        finally:
            part.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        """Return the free bytes of the volume directory's filesystem."""
        return shutil.disk_usage(self.root).free
