"""The host image cache (sha512-verified) and qcow2 overlays with the real qemu-img."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from nubis.daemons.compute import disks
from nubis.daemons.compute.errors import DiskError, ImageCacheError, ImageChecksumMismatch


def sha(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def test_cache_stores_verified_bytes(tmp_path: Path) -> None:
    cache = disks.ImageCache(tmp_path / "images")
    cache.setup()
    data = b"kernel bytes" * 1000
    path = cache.add_stream([data[:5], data[5:]], sha(data))
    assert path == cache.path(sha(data)) and path.read_bytes() == data
    assert cache.has(sha(data)) and path.stat().st_mode & 0o777 == 0o644
    src = tmp_path / "src"
    src.write_bytes(data)
    assert cache.add_file(src, sha(data)) == path  # already cached
    cache.remove(sha(data))
    assert not cache.has(sha(data))


def test_cache_refuses_wrong_bytes(tmp_path: Path) -> None:
    cache = disks.ImageCache(tmp_path / "images")
    cache.setup()
    with pytest.raises(ImageChecksumMismatch):
        cache.add_stream([b"evil"], sha(b"good"))
    assert list(cache.root.iterdir()) == []  # nothing half-written is left
    for bad in ("abc", sha(b"x").upper(), "../" + sha(b"x")[3:]):
        with pytest.raises(ImageCacheError):
            cache.path(bad)


def test_overlay_on_a_base(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    disks.qemu_img(["create", "-q", "-f", "qcow2", str(base), "64M"])
    assert disks.check_base(base, "qcow2") == 64 * 1024 * 1024
    overlay = tmp_path / "disk"
    disks.create_overlay(base, overlay, "qcow2", 1024 ** 3)
    info = disks.image_info(overlay, "qcow2")
    assert info["virtual-size"] == 1024 ** 3
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == "qcow2"
    same = tmp_path / "disk2"
    disks.create_overlay(base, same, "qcow2")
    assert disks.image_info(same, "qcow2")["virtual-size"] == 64 * 1024 * 1024


def test_bases_with_backing_files_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    disks.qemu_img(["create", "-q", "-f", "raw", str(secret), "1M"])
    sneaky = tmp_path / "sneaky.qcow2"
    disks.qemu_img(["create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(sneaky)])
    with pytest.raises(DiskError, match="backing file"):
        disks.check_base(sneaky, "qcow2")
    with pytest.raises(DiskError, match=r"not qcow2|Image is not in qcow2"):
        disks.check_base(secret, "qcow2")


def test_relative_base_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "inst").mkdir()
    disks.qemu_img(["create", "-q", "-f", "qcow2", str(tmp_path / "images" / "b"), "1M"])
    monkeypatch.chdir(tmp_path)
    disks.create_overlay(Path("images/b"), Path("inst/disk"), "qcow2")
    info = disks.image_info(tmp_path / "inst" / "disk", "qcow2")
    assert info["backing-filename"] == str(tmp_path / "images" / "b")
