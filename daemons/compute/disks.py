"""Base images and instance disks: the host's image cache and ``qemu-img``.

Base images (disks, kernels, ramdisks) are stored once per host, named by the
sha512 of their bytes (Glance's ``os_hash_value``) and verified while they are
written, so a cached file is always the image it claims to be. An instance's
root disk is a qcow2 overlay on its base (``qemu-img create -b base -F fmt``);
the base is never written.

A base that itself names a backing file or an external data file is refused:
an image could otherwise make QEMU open any file on the host (Nova refuses the
same images).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from nubis.daemons.compute.errors import DiskError, ImageCacheError, ImageChecksumMismatch

DiskFormat = Literal["qcow2", "raw"]
_SHA512 = re.compile(r"^[0-9a-f]{128}$")
#: ``qemu-img info`` on an untrusted image runs under these limits (as Nova does).
QEMU_IMG_LIMITS = ["prlimit", "--as=1073741824", "--cpu=30", "--"]


def qemu_img(args: list[str], timeout: float = 120.0, limited: bool = False) -> str:
    """Run ``qemu-img ARGS`` (argv list) and return stdout, or raise DiskError.

    ``limited`` runs it under ``prlimit`` (1 GiB address space, 30 s CPU), for
    reading images nubis did not make.
    """
    argv = [*(QEMU_IMG_LIMITS if limited else []), "qemu-img", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError as exc:
        raise DiskError(f"{argv[0]} not found: install qemu-utils") from exc
    except subprocess.TimeoutExpired as exc:
        raise DiskError(f"qemu-img {args[0]} took longer than {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise DiskError(f"qemu-img {args[0]}: {done.stderr.strip()[-500:]}")
    return done.stdout


def image_info(path: Path, fmt: DiskFormat) -> dict[str, Any]:
    """Return ``qemu-img info`` of ``path`` read as ``fmt``, under resource limits."""
    out = qemu_img(["info", "--output=json", "-f", fmt, str(path)], timeout=60, limited=True)
    try:
        info: dict[str, Any] = json.loads(out)
    except ValueError as exc:
        raise DiskError(f"qemu-img info {path}: unreadable output") from exc
    return info


def check_base(path: Path, fmt: DiskFormat) -> int:
    """Refuse a base image with a backing or data file; return its virtual size."""
    info = image_info(path, fmt)
    if info.get("format") != fmt:
        raise DiskError(f"{path.name} is {info.get('format')}, not {fmt}")
    if "backing-filename" in info or "full-backing-filename" in info:
        raise DiskError(f"{path.name}: images with a backing file are not allowed")
    data_file = info.get("format-specific", {}).get("data", {}).get("data-file")
    if data_file:
        raise DiskError(f"{path.name}: images with an external data file are not allowed")
    return int(info["virtual-size"])


def create_overlay(base: Path, dest: Path, fmt: DiskFormat, size: int | None = None) -> None:
    """Create the qcow2 overlay ``dest`` on ``base``; grow it to ``size`` bytes if larger."""
    # qemu-img resolves a relative backing path against the overlay's directory
    args = ["create", "-q", "-f", "qcow2", "-b", str(base.absolute()), "-F", fmt, str(dest)]
    if size is not None:
        args.append(str(size))
    qemu_img(args)


class ImageCache:
    """Base files of one host, stored once each and named by their sha512."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def setup(self) -> None:
        """Create the cache directory (searchable by QEMU's user)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)

    def path(self, sha512: str) -> Path:
        """Return where the image with this sha512 lives (it may not exist)."""
        if not _SHA512.match(sha512):
            raise ImageCacheError(f"{sha512!r} is not a lowercase hex sha512")
        return self.root / sha512

    def has(self, sha512: str) -> bool:
        """Return True if the image is cached."""
        return self.path(sha512).is_file()

    def add_file(self, src: Path, sha512: str) -> Path:
        """Copy ``src`` into the cache, verifying its sha512; return the cached path."""
        with src.open("rb") as f:
            return self.add_stream(iter(lambda: f.read(1 << 20), b""), sha512)

    def add_stream(self, chunks: Iterable[bytes], sha512: str) -> Path:
        """Store the bytes of ``chunks`` if they hash to ``sha512``; return the cached path.

        Raises:
            ImageChecksumMismatch: the bytes hash to something else (nothing is kept).
        """
        dest = self.path(sha512)
        if dest.is_file():
            return dest
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha512()
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha512:
                raise ImageChecksumMismatch(
                    f"image bytes hash to {digest.hexdigest()[:16]}…, expected {sha512[:16]}…")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return dest

    def remove(self, sha512: str) -> None:
        """Drop an image from the cache (no error if absent)."""
        self.path(sha512).unlink(missing_ok=True)
