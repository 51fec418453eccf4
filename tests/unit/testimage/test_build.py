"""The test image set's manifest cache and the Debian package helpers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nubis.testimage import build, debs
from nubis.testimage.errors import TestImageError


def make_deb(tmp_path: Path, name: str, version: str, depends: str) -> debs.Deb:
    root = tmp_path / f"{name}-pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "boot" / "vmlinuz-1.0-test").write_bytes(b"kernel")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
        f"Maintainer: t <t@example.org>\nDepends: {depends}\nDescription: test\n")
    out = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(out)], check=True,
                   capture_output=True)
    return debs.Deb(name, version, out)


def test_exact_dependency_resolves_the_versioned_kernel(tmp_path: Path) -> None:
    meta = make_deb(tmp_path, "linux-image-cloud-amd64", "6.1.1-1",
                    "linux-image-6.1.0-9-cloud-amd64 (= 6.1.1-1), other (>= 2)")
    assert debs.exact_dependency(meta, "linux-image-") == \
        ("linux-image-6.1.0-9-cloud-amd64", "6.1.1-1")
    with pytest.raises(TestImageError, match="no 'busybox"):
        debs.exact_dependency(meta, "busybox")
    extracted = debs.extract(meta, tmp_path / "x")
    assert (extracted / "boot" / "vmlinuz-1.0-test").read_bytes() == b"kernel"


def test_download_refuses_option_like_specs(tmp_path: Path) -> None:
    for spec in ("-o=Dir::Etc=/tmp", "pkg name", "pkg;rm", ""):
        with pytest.raises(TestImageError, match="refusing"):
            debs.download(spec, tmp_path)


def write_set(root: Path) -> None:
    root.mkdir(parents=True)
    for name, data in ((build.KERNEL_FILE, b"k" * 10), (build.RAMDISK_FILE, b"r" * 5),
                       (build.DISK_FILE, b"d" * 7)):
        (root / name).write_bytes(data)
    build._write_manifest(root, release="6.1.0-test", kernel_version="6.1-1",
                          busybox_version="1:1.35")


def test_manifest_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "test-image"
    write_set(root)
    got = build.load_cached(root)
    assert got is not None
    assert [f.name for f in got.files()] == ["nubis-test-kernel", "nubis-test-ramdisk",
                                             "nubis-test"]
    assert [f.disk_format for f in got.files()] == ["aki", "ari", "qcow2"]
    assert got.disk.container_format == "bare"
    assert got.kernel.path == root / build.KERNEL_FILE and got.kernel.size == 10
    size, md5, sha512 = build.hash_file(root / build.RAMDISK_FILE)
    assert (got.ramdisk.size, got.ramdisk.md5, got.ramdisk.sha512) == (size, md5, sha512)
    assert got.kernel_release == "6.1.0-test" and got.cmdline == build.CMDLINE
    # build_test_image returns the cached set without downloading anything
    assert build.build_test_image(root) == got


def test_incomplete_sets_are_not_loaded(tmp_path: Path) -> None:
    root = tmp_path / "test-image"
    assert build.load_cached(root) is None
    write_set(root)
    (root / build.DISK_FILE).write_bytes(b"short")
    assert build.load_cached(root) is None
    (root / build.DISK_FILE).unlink()
    assert build.load_cached(root) is None
    (root / build.MANIFEST).write_text("{not json")
    assert build.load_cached(root) is None
