"""Build (once) and describe the project's bootable test image set.

``build_test_image(cache_dir)`` returns a :class:`TestImageSet`: the Debian cloud
kernel (``aki``), a busybox initramfs (``ari``) and a small qcow2 root disk, each
with its size, md5 and sha512. The set is cached in ``cache_dir`` (by default
``<state>/cache/test-image``) and rebuilt only when a file is missing or its size
changed. Concurrent callers serialize on a lock file; the finished set appears
atomically (a directory rename), so a crash mid-build leaves nothing half-made.

Uploading the set to the image service is a separate step: it takes the
``TestImageSet`` and needs nothing else from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nubis.common.fileutil import locked
from nubis.testimage import debs, initramfs
from nubis.testimage.errors import TestImageError

MANIFEST = "manifest.json"
FORMAT = 5
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
#: Virtual size of the root disk (fits the smallest flavor, m1.nano's 1 GB).
DISK_VIRTUAL_SIZE = 64 * 1024 * 1024
#: Kernel command line for direct kernel boot of the set (Glance ``os_command_line``).
CMDLINE = "console=ttyS0 quiet"

KERNEL_FILE = "nubis-test-kernel"
RAMDISK_FILE = "nubis-test-ramdisk"
DISK_FILE = "nubis-test.qcow2"


@dataclass(frozen=True)
class ImageFile:
    """One file of the set, with what the image service needs to register it."""

    #: Image name in the image service (``nubis-test-kernel``, ...).
    name: str
    path: Path
    size: int
    md5: str
    sha512: str
    disk_format: str
    container_format: str


@dataclass(frozen=True)
class TestImageSet:
    """The test image: kernel + ramdisk for direct boot, and a qcow2 root disk."""

    __test__ = False  # not a pytest test class

    kernel: ImageFile
    ramdisk: ImageFile
    disk: ImageFile
    #: Kernel release (``uname -r`` in the guest), e.g. ``6.1.0-57-cloud-amd64``.
    kernel_release: str
    #: Debian package versions the set was built from.
    kernel_package_version: str
    busybox_version: str
    #: Kernel command line to boot the set with.
    cmdline: str = CMDLINE

    def files(self) -> tuple[ImageFile, ImageFile, ImageFile]:
        """Return kernel, ramdisk and disk."""
        return (self.kernel, self.ramdisk, self.disk)


def default_cache_dir(state_dir: Path) -> Path:
    """Return where a state directory keeps its test image set."""
    return state_dir / "cache" / "test-image"


def build_test_image(cache_dir: Path, *, rebuild: bool = False) -> TestImageSet:
    """Return the cached test image set in ``cache_dir``, building it when missing.

    Raises:
        TestImageError: a package could not be fetched or unpacked, a kernel module
            is missing, or ``qemu-img`` failed.
    """
    cache_dir = cache_dir.absolute()
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    with locked(cache_dir.parent / f".{cache_dir.name}.lock"):
        if not rebuild:
            cached = load_cached(cache_dir)
            if cached is not None:
                return cached
        work = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.build-", dir=cache_dir.parent))
        try:
            _build_into(work)
            _replace_dir(work / "out", cache_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result = load_cached(cache_dir)
        if result is None:
            raise TestImageError(f"{cache_dir}: the set just built does not load")
        return result


def load_cached(cache_dir: Path) -> TestImageSet | None:
    """Return the set described by ``cache_dir/manifest.json``, or None if incomplete."""
    try:
        doc = json.loads((cache_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    try:
        files = {role: ImageFile(**{**f, "path": cache_dir / f["path"]})
                 for role, f in doc["files"].items()}
        result = TestImageSet(kernel=files["kernel"], ramdisk=files["ramdisk"],
                              disk=files["disk"], kernel_release=doc["kernel_release"],
                              kernel_package_version=doc["kernel_package_version"],
                              busybox_version=doc["busybox_version"], cmdline=doc["cmdline"])
    except (KeyError, TypeError):
        return None
    for f in result.files():
        try:
            if f.path.stat().st_size != f.size:
                return None
        except OSError:
            return None
    return result


def hash_file(path: Path) -> tuple[int, str, str]:
    """Return ``(size, md5 hex, sha512 hex)`` of a file, read once."""
    md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha512.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest(), sha512.hexdigest()


# --- the build --------------------------------------------------------------------


def _build_into(work: Path) -> None:
    """Download, unpack and assemble the set into ``work/out`` (with its manifest)."""
    out = work / "out"
    out.mkdir()
    meta = debs.download(KERNEL_METAPACKAGE, work / "debs")
    kpkg, kver = debs.exact_dependency(meta, "linux-image-")
    kernel_deb = debs.download(f"{kpkg}={kver}", work / "debs")
    busybox_deb = debs.download(BUSYBOX_PACKAGE, work / "debs")
    kroot = debs.extract(kernel_deb, work / "kernel")
    broot = debs.extract(busybox_deb, work / "busybox")
    vmlinuz, module_dir = _kernel_files(kroot)
    shutil.copyfile(vmlinuz, out / KERNEL_FILE)
    (out / RAMDISK_FILE).write_bytes(initramfs.build(_busybox(broot), module_dir))
    _make_disk(work / "disk.raw", out / DISK_FILE)
    _write_manifest(out, release=module_dir.name, kernel_version=kernel_deb.version,
                    busybox_version=busybox_deb.version)


def _kernel_files(root: Path) -> tuple[Path, Path]:
    """Return the kernel image and its ``lib/modules/<release>`` directory."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise TestImageError(f"expected one boot/vmlinuz-* in the kernel package, got {kernels}")
    release = kernels[0].name.removeprefix("vmlinuz-")
    for base in (root / "lib" / "modules", root / "usr" / "lib" / "modules"):
        if (base / release).is_dir():
            return kernels[0], base / release
    raise TestImageError(f"kernel package has no lib/modules/{release}")


def _busybox(root: Path) -> Path:
    for candidate in (root / "bin" / "busybox", root / "usr" / "bin" / "busybox"):
        if candidate.is_file():
            return candidate
    raise TestImageError("busybox-static package has no bin/busybox")


def _make_disk(raw: Path, qcow2: Path) -> None:
    """Write a raw disk that starts with the marker line and convert it to qcow2."""
    with raw.open("wb") as f:
        f.write(initramfs.DISK_MARKER)
        f.truncate(DISK_VIRTUAL_SIZE)
    argv = ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)]
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise TestImageError("qemu-img not found: install qemu-utils") from exc
    except subprocess.CalledProcessError as exc:
        raise TestImageError(f"qemu-img convert: {exc.stderr.strip()}") from exc


def _write_manifest(out: Path, *, release: str, kernel_version: str,
                    busybox_version: str) -> None:
    files: dict[str, dict[str, Any]] = {}
    for role, name, disk_format, container_format in (
            ("kernel", KERNEL_FILE, "aki", "aki"),
            ("ramdisk", RAMDISK_FILE, "ari", "ari"),
            ("disk", DISK_FILE, "qcow2", "bare")):
        size, md5, sha512 = hash_file(out / name)
        image_name = name.removesuffix(".qcow2")
        files[role] = asdict(ImageFile(image_name, Path(name), size, md5, sha512,
                                       disk_format, container_format))
        files[role]["path"] = name
    doc = {"format": FORMAT, "kernel_release": release,
           "kernel_package_version": kernel_version, "busybox_version": busybox_version,
           "cmdline": CMDLINE, "files": files}
    (out / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _replace_dir(src: Path, dest: Path) -> None:
    """Move the finished ``src`` to ``dest``, replacing an old incomplete copy."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    src.rename(dest)
    os.chmod(dest, 0o755)
