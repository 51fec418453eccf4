"""The qcow2 file backend with the real ``qemu-img`` in a temporary directory."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from nubis.daemons.volume import qemuimg
from nubis.daemons.volume.backend import FileBackend
from nubis.daemons.volume.errors import BadRequest, InsufficientCapacity, VolumeExists


def test_create_snapshot_clone_extend_delete(tmp_path: Path) -> None:
    be = FileBackend(tmp_path / "vols")
    be.setup()
    a, b, snap = (str(uuid.uuid4()) for _ in range(3))
    be.create(a, 1)
    with pytest.raises(VolumeExists):
        be.create(a, 1)
    be.snapshot(a, snap)
    be.clone(b, 2, a, snap)
    assert be.volumes()[a]["snapshots"] == [snap]
    assert be.volumes()[b]["size"] == 2
    with pytest.raises(BadRequest, match="greater than current size"):
        be.extend(a, 1)
    be.extend(a, 3)
    assert qemuimg.virtual_size(be.path(a)) == 3 * qemuimg.GiB
    be.delete_snapshot(a, snap)
    assert be.volumes()[a]["snapshots"] == []
    be.delete(a)
    be.delete(a)
    assert set(be.volumes()) == {b}


def test_over_capacity_is_refused_with_the_numbers(tmp_path: Path) -> None:
    be = FileBackend(tmp_path / "vols", ratio=1.0)
    be.setup()
    total = int(be.capacity().total_gb)
    with pytest.raises(InsufficientCapacity, match="Insufficient free space"):
        be.create(str(uuid.uuid4()), total + 10)
    assert list((tmp_path / "vols").iterdir()) == []


def test_reconcile_removes_half_written_files(tmp_path: Path) -> None:
    be = FileBackend(tmp_path / "vols")
    be.setup()
    (tmp_path / "vols" / f"volume-{uuid.uuid4()}.part").write_bytes(b"x")
    assert len(be.reconcile()) == 1
    assert list((tmp_path / "vols").iterdir()) == []


def test_ids_must_be_uuids(tmp_path: Path) -> None:
    be = FileBackend(tmp_path / "vols")
    with pytest.raises(BadRequest):
        be.path("../../etc/passwd")


@pytest.mark.parametrize("length", [3 * 1024 * 1024 + 100, 2 * 1024 * 1024])
def test_raw_image_is_converted_while_it_downloads(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   length: int) -> None:
    import hashlib
    import os

    from nubis.daemons.volume import backend
    from nubis.daemons.volume.backend import ImageSource
    from nubis.daemons.volume.errors import ImageFetchError

    monkeypatch.setattr(backend, "SEGMENT", 1024 * 1024)
    data = bytearray(os.urandom(length))
    data[1024 * 1024:2 * 1024 * 1024] = bytes(1024 * 1024)  # a zero segment
    src = tmp_path / "image.raw"
    src.write_bytes(data)
    be = FileBackend(tmp_path / "vols")
    be.setup()
    vid = str(uuid.uuid4())
    sha = hashlib.sha512(data).hexdigest()
    be.from_image(vid, 1, ImageSource(src.as_uri(), "t", "raw", sha))
    out = tmp_path / "out.raw"
    qemuimg.convert(be.path(vid), out, "qcow2", "raw")
    assert out.read_bytes()[:length] == bytes(data)
    assert qemuimg.virtual_size(be.path(vid)) == qemuimg.GiB
    bad = str(uuid.uuid4())
    with pytest.raises(ImageFetchError, match="sha512"):
        be.from_image(bad, 1, ImageSource(src.as_uri(), "t", "raw", "0" * 128))
    assert not be.path(bad).exists() and set(be.volumes()) == {vid}
