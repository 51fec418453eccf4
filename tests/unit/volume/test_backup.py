"""Chunked backups (full, incremental, verified restore) against an in-memory object store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from nubis.daemons.volume import backup as bk
from nubis.daemons.volume import extents, qemuimg
from nubis.daemons.volume.errors import BackupError

CHUNK = 64 * 1024


class MemoryStore(bk.ObjectStore):
    """The object calls a backup makes, kept in a dict."""

    def __init__(self) -> None:
        super().__init__(bk.Target("http://127.0.0.1:9/v1/AUTH_x", "t", "c"))
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def ensure_container(self) -> None:
        pass

    def put(self, name: str, data: bytes) -> None:
        self.puts += 1
        self.objects[name] = data

    def get(self, name: str) -> bytes:
        if name not in self.objects:
            raise BackupError(f"missing {name}")
        return self.objects[name]

    def delete(self, name: str) -> None:
        self.objects.pop(name, None)


def _spec(backup_id: str, parent: str = "", compression: str = "zlib") -> bk.BackupSpec:
    return bk.BackupSpec(backup_id, "vol", CHUNK, compression, parent, 2)


def _backup(path: Path, spec: bk.BackupSpec, store: MemoryStore) -> dict[str, Any]:
    with extents.open_raw(path) as source:
        return bk.backup(source, spec, store)


def _image(path: Path) -> bytes:
    data = bytearray(10 * CHUNK + 123)
    data[0:CHUNK] = os.urandom(CHUNK)
    data[5 * CHUNK:5 * CHUNK + 10] = b"x" * 10
    path.write_bytes(data)
    return bytes(data)


@pytest.mark.parametrize("compression", ["zlib", "none"])
def test_full_backup_stores_non_zero_chunks_and_restores(tmp_path: Path,
                                                          compression: str) -> None:
    data = _image(tmp_path / "raw")
    store = MemoryStore()
    doc = _backup(tmp_path / "raw", _spec("b1", compression=compression), store)
    assert doc["stored_chunks"] == 2 and len(doc["chunks"]) == 11
    assert set(store.objects) == {"volume_vol/backup_b1/chunk-00000",
                                  "volume_vol/backup_b1/chunk-00005",
                                  "volume_vol/backup_b1/metadata"}
    size = bk.restore("volume_vol/backup_b1/metadata", tmp_path / "out", store)
    assert size == len(data) and (tmp_path / "out").read_bytes() == data


def test_incremental_uploads_only_changed_chunks(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    data = bytearray(_image(raw))
    store = MemoryStore()
    _backup(raw, _spec("b1"), store)
    data[7 * CHUNK] = 7
    raw.write_bytes(data)
    before = store.puts
    doc = _backup(raw, _spec("b2", parent="volume_vol/backup_b1/metadata"), store)
    assert doc["stored_chunks"] == 1 and store.puts - before == 2
    assert doc["chunks"][0]["object"] == "volume_vol/backup_b1/chunk-00000"
    bk.restore("volume_vol/backup_b2/metadata", tmp_path / "out", store)
    assert (tmp_path / "out").read_bytes() == bytes(data)
    bk.delete("volume_vol/backup_b2/metadata", "vol", "b2", store)
    assert not any(n.startswith("volume_vol/backup_b2/") for n in store.objects)
    assert "volume_vol/backup_b1/chunk-00000" in store.objects


def test_restore_refuses_a_corrupt_chunk(tmp_path: Path) -> None:
    _image(tmp_path / "raw")
    store = MemoryStore()
    _backup(tmp_path / "raw", _spec("b1", compression="none"), store)
    name = "volume_vol/backup_b1/chunk-00005"
    store.objects[name] = b"y" + store.objects[name][1:]
    with pytest.raises(BackupError, match="sha256"):
        bk.restore("volume_vol/backup_b1/metadata", tmp_path / "out", store)


def test_metadata_of_another_format_is_refused(tmp_path: Path) -> None:
    store = MemoryStore()
    store.objects["m"] = b'{"version": 99}'
    with pytest.raises(BackupError, match="unknown format"):
        bk.restore("m", tmp_path / "out", store)


def test_incompressible_chunks_are_stored_as_they_are(tmp_path: Path) -> None:
    data = _image(tmp_path / "raw")
    store = MemoryStore()
    doc = _backup(tmp_path / "raw", _spec("b1"), store)
    assert doc["chunks"][0]["compression"] == "none"  # random bytes
    assert "compression" not in doc["chunks"][5]  # mostly zeros: zlib
    assert store.objects["volume_vol/backup_b1/chunk-00000"] == data[:CHUNK]
    assert len(store.objects["volume_vol/backup_b1/chunk-00005"]) < CHUNK // 10
    big = os.urandom(bk.SAMPLE) * 4
    assert bk.compress(big, "zlib") == (big, "none")
    assert bk.compress(b"a" * 4 * bk.SAMPLE, "zlib")[1] == "zlib"


def test_qcow2_is_read_in_place_and_matches_its_raw_export(tmp_path: Path) -> None:
    data = _image(tmp_path / "raw")[:10 * CHUNK]  # a whole number of sectors
    (tmp_path / "raw").write_bytes(data)
    qcow2 = tmp_path / "vol.qcow2"
    qemuimg.convert(tmp_path / "raw", qcow2, "raw")
    reader = extents.open_volume(qcow2)
    assert reader is not None
    with reader:
        assert reader.size == len(data)
        assert reader.read(3 * CHUNK, CHUNK) is None  # a zero extent: not read
        doc = bk.backup(reader, _spec("b1"), MemoryStore())
    raw_doc = _backup(tmp_path / "raw", _spec("b1"), MemoryStore())
    assert [c["sha256"] for c in doc["chunks"]] == [c["sha256"] for c in raw_doc["chunks"]]
