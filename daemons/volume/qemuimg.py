"""``qemu-img`` as argument lists (never a shell string): create, convert, resize, snapshots.

Every call is one :func:`run` of ``[QEMU_IMG, ...]`` with paths the daemon made
itself (nothing from a request becomes a path component); a failure raises
:class:`~nubis.daemons.volume.errors.QemuImgError` with qemu-img's own message.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from nubis.daemons.volume.errors import QemuImgError

QEMU_IMG = "qemu-img"
GiB = 1024 ** 3


def run(*args: str, timeout: float = 3600.0) -> str:
    """Run ``qemu-img ARGS``; return its stdout or raise QemuImgError with its stderr."""
    try:
        proc = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QemuImgError(f"qemu-img {args[0]}: {exc}") from None
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise QemuImgError(f"qemu-img {args[0]} failed: {message[-1] if message else ''}")
    return proc.stdout


def create(path: Path, size_gb: int) -> None:
    """Create an empty qcow2 file of ``size_gb`` GiB."""
    run("create", "-q", "-f", "qcow2", str(path), f"{size_gb}G")


def info(path: Path, force_share: bool = True) -> dict[str, Any]:
    """Return ``qemu-img info --output=json`` of a file (``-U``: readable while in use)."""
    args = ["info", "--output=json"]
    if force_share:
        args.append("-U")
    doc: dict[str, Any] = json.loads(run(*args, str(path)))
    return doc


def virtual_size(path: Path, fmt: str | None = None) -> int:
    """Return the guest-visible size of an image file in bytes."""
    args = ["info", "--output=json", "-U"]
    if fmt:
        args += ["-f", fmt]
    return int(json.loads(run(*args, str(path)))["virtual-size"])


def convert(src: Path, dst: Path, src_format: str, dst_format: str = "qcow2",
            snapshot: str | None = None, force_share: bool = False) -> None:
    """Copy ``src`` into a new ``dst`` (of ``snapshot`` of it when named)."""
    args = ["convert", "-q", "-f", src_format, "-O", dst_format]
    if snapshot is not None:
        args += ["-l", f"snapshot.name={snapshot}"]
    if force_share:
        args.append("-U")
    if dst_format == "raw":
        args += ["-S", "4k"]
    run(*args, str(src), str(dst))


def _opts(path: Path) -> str:
    """Return a path as an ``--image-opts`` value (commas doubled)."""
    return str(path).replace(",", ",,")


def convert_range(src: Path, dst: Path, offset: int, length: int) -> None:
    """Copy one byte range of the raw ``src`` into the same range of the qcow2 ``dst``.

    ``dst`` exists and that range is still empty (``-n --target-is-zero``: zeros
    are not written).
    """
    run("convert", "-q", "-n", "--target-is-zero", "-W", "--image-opts",
        f"driver=raw,offset={offset},size={length},file.driver=file,"
        f"file.filename={_opts(src)}",
        "--target-image-opts",
        f"driver=raw,offset={offset},size={length},file.driver=qcow2,"
        f"file.file.driver=file,file.file.filename={_opts(dst)}")


def resize(path: Path, size_gb: int) -> None:
    """Grow a qcow2 file to ``size_gb`` GiB."""
    run("resize", "-q", "-f", "qcow2", str(path), f"{size_gb}G")


def snapshot_create(path: Path, name: str) -> None:
    """Take an internal qcow2 snapshot named ``name``."""
    run("snapshot", "-c", name, str(path))


def snapshot_delete(path: Path, name: str) -> None:
    """Delete an internal qcow2 snapshot (its clusters return to the image)."""
    run("snapshot", "-d", name, str(path))


def snapshot_apply(path: Path, name: str) -> None:
    """Revert an image to its internal snapshot ``name`` (size and contents)."""
    run("snapshot", "-a", name, str(path))


def snapshots(path: Path) -> list[str]:
    """Return the names of a file's internal snapshots."""
    return [str(s["name"]) for s in info(path).get("snapshots") or []]
