"""The ring file format: round trips, atomic writes, and rejection of damaged files."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nubis.ring.errors import RingError, RingFileError
from nubis.ring.ringdata import (
    FORMAT_VERSION,
    MAGIC,
    PREAMBLE,
    RingData,
    expected_row_lengths,
    load_ring_file,
    smallest_dtype,
    write_ring_file,
)


def dev(i: int, zone: int = 1) -> dict[str, Any]:
    return {"id": i, "region": 1, "zone": zone, "ip": "127.0.0.1", "port": 6200 + i,
            "device": f"sd{i}", "weight": 100.0, "meta": "m\u00e9ta",
            "replication_ip": "127.0.0.1", "replication_port": 6200 + i}


def make_data(part_power: int = 6, replicas: float = 3.0, ndev: int = 10,
              seed: int = 0, version: int = 7) -> RingData:
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, ndev, size=n).astype(np.uint32)
            for n in expected_row_lengths(part_power, replicas)]
    return RingData(part_power, replicas, rows, [dev(i) for i in range(ndev)], version)


def assert_same(a: RingData, b: RingData) -> None:
    assert (a.part_power, a.replicas, a.version, a.devs) == (b.part_power, b.replicas,
                                                             b.version, b.devs)
    assert len(a.replica2part2dev) == len(b.replica2part2dev)
    for x, y in zip(a.replica2part2dev, b.replica2part2dev, strict=True):
        assert np.array_equal(x, y)


@pytest.fixture
def ring_path(tmp_path: Path) -> Path:
    path = tmp_path / "object.ring"
    write_ring_file(path, make_data())
    return path


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize(("ndev", "dtype"), [(1, np.uint8), (256, np.uint8),
                                             (257, np.uint16), (65536, np.uint16),
                                             (65537, np.uint32)])
def test_round_trip_uses_smallest_dtype(tmp_path: Path, ndev: int, dtype: Any) -> None:
    data = make_data(part_power=4, ndev=ndev)
    write_ring_file(tmp_path / "r.ring", data)
    back = load_ring_file(tmp_path / "r.ring")
    assert_same(data, back)
    assert all(row.dtype == dtype for row in back.replica2part2dev)


@pytest.mark.parametrize("part_power", [0, 1, 2, 10])
@pytest.mark.parametrize("replicas", [1.0, 2.5, 3.0, 1.25, 4.75])
def test_round_trip_shapes(tmp_path: Path, part_power: int, replicas: float) -> None:
    data = make_data(part_power=part_power, replicas=replicas)
    write_ring_file(tmp_path / "r.ring", data)
    back = load_ring_file(tmp_path / "r.ring")
    assert_same(data, back)
    assert [len(r) for r in back.replica2part2dev] == expected_row_lengths(part_power, replicas)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(part_power=st.integers(0, 8), replicas=st.sampled_from([1.0, 1.5, 2.0, 2.25, 3.0, 5.5]),
       ndev=st.integers(1, 400), seed=st.integers(0, 1000), version=st.integers(0, 2**40))
def test_round_trip_property(tmp_path: Path, part_power: int, replicas: float, ndev: int,
                             seed: int, version: int) -> None:
    data = make_data(part_power, replicas, ndev, seed, version)
    path = tmp_path / f"p{seed}.ring"
    write_ring_file(path, data)
    assert_same(data, load_ring_file(path))


def test_removed_devices_round_trip(tmp_path: Path) -> None:
    data = make_data(ndev=5)
    devs = list(data.devs)
    devs[2] = None
    data = RingData(data.part_power, data.replicas, data.replica2part2dev, devs, 1)
    write_ring_file(tmp_path / "r.ring", data)
    assert load_ring_file(tmp_path / "r.ring").devs[2] is None


def test_loaded_rows_are_readonly_views_of_a_mapping(ring_path: Path) -> None:
    row = load_ring_file(ring_path).replica2part2dev[0]
    assert not row.flags.writeable
    assert not row.flags.owndata
    with pytest.raises(ValueError):
        row[0] = 1


def test_file_is_magic_plus_json_header_no_pickle(ring_path: Path) -> None:
    raw = ring_path.read_bytes()
    magic, version, hlen, _ = PREAMBLE.unpack_from(raw)
    assert magic == MAGIC == b"NUBISRNG" and version == FORMAT_VERSION
    header = json.loads(raw[PREAMBLE.size:PREAMBLE.size + hlen])
    assert header["part_power"] == 6 and header["dtype"] == "<u1"
    assert (PREAMBLE.size + hlen) % 64 == 0
    assert b"\x80\x04" not in raw[:PREAMBLE.size + hlen]  # no pickle protocol marker


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    write_ring_file(path, make_data(version=1))
    old_inode = path.stat().st_ino
    write_ring_file(path, make_data(version=2))
    assert load_ring_file(path).version == 2
    assert path.stat().st_ino != old_inode  # replaced by rename, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.ring"]


def test_write_failure_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    write_ring_file(path, make_data(version=1))
    devs: list[dict[str, Any] | None] = [dev(i) for i in range(10)]
    devs[0] = {**dev(0), "x": object()}
    bad = RingData(6, 3.0, make_data().replica2part2dev, devs, 2)
    with pytest.raises(RingFileError, match="not JSON-serializable"):
        write_ring_file(path, bad)
    assert load_ring_file(path).version == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.ring"]


def test_smallest_dtype() -> None:
    assert smallest_dtype(0) == np.uint8
    assert smallest_dtype(255) == np.uint8
    assert smallest_dtype(256) == np.uint16
    assert smallest_dtype(2**32 - 1) == np.uint32
    with pytest.raises(ValueError):
        smallest_dtype(2**32)


# ----------------------------------------------------------- bad ring data


@pytest.mark.parametrize(("change", "message"), [
    ({"replica2part2dev": [np.zeros(64, np.uint8)] * 2}, "lengths"),
    ({"replica2part2dev": [np.full(64, 10, np.uint8)] * 3}, "names device 10"),
    ({"replica2part2dev": [np.full(64, -1, np.int16)] * 3}, "negative"),
    ({"devs": [dev(1)] + [dev(i) for i in range(1, 10)]}, "index 0 has id 1"),
    ({"devs": [{"id": i, "ip": "x"} for i in range(10)]}, "device 0 lacks region, zone"),
    ({"part_power": 33}, "part_power"),
    ({"replicas": 0.5}, "replicas"),
    ({"replicas": float("nan")}, "replicas"),
])
def test_write_rejects_inconsistent_data(tmp_path: Path, change: dict[str, Any],
                                         message: str) -> None:
    base = make_data()
    fields = {"part_power": base.part_power, "replicas": base.replicas,
              "replica2part2dev": base.replica2part2dev, "devs": base.devs, "version": 0}
    fields.update(change)
    with pytest.raises(RingFileError, match=message):
        write_ring_file(tmp_path / "r.ring", RingData(**fields))
    assert not (tmp_path / "r.ring").exists()


# --------------------------------------------------------- damaged files


def _header_span(raw: bytes) -> tuple[int, int]:
    _, _, hlen, _ = PREAMBLE.unpack_from(raw)
    return PREAMBLE.size, PREAMBLE.size + hlen


def _reject(path: Path, message: str) -> str:
    with pytest.raises(RingFileError, match=message) as info:
        load_ring_file(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text
    assert isinstance(info.value, RingError)
    return text


def test_missing_file(tmp_path: Path) -> None:
    _reject(tmp_path / "nope.ring", "cannot read")


@pytest.mark.parametrize("keep", [0, 5, 31, 40, 200, -1])
def test_truncated_file(ring_path: Path, keep: int) -> None:
    raw = ring_path.read_bytes()
    ring_path.write_bytes(raw[:keep] if keep >= 0 else raw[:-1])
    _reject(ring_path, "truncated")


def test_trailing_garbage(ring_path: Path) -> None:
    ring_path.write_bytes(ring_path.read_bytes() + b"x")
    _reject(ring_path, "trailing")


def test_flipped_header_byte(ring_path: Path) -> None:
    raw = bytearray(ring_path.read_bytes())
    start, _ = _header_span(raw)
    raw[start + 5] ^= 0x01
    ring_path.write_bytes(raw)
    _reject(ring_path, "header checksum")


@pytest.mark.parametrize("where", [0, 100, -1])
def test_flipped_array_byte(ring_path: Path, where: int) -> None:
    raw = bytearray(ring_path.read_bytes())
    _, end = _header_span(raw)
    raw[end + where if where >= 0 else where] ^= 0x01
    ring_path.write_bytes(raw)
    _reject(ring_path, "table checksum")


def test_wrong_magic(ring_path: Path) -> None:
    raw = bytearray(ring_path.read_bytes())
    raw[0:8] = b"\x1f\x8b\x08\x00RING"  # e.g. a gzipped Swift ring
    ring_path.write_bytes(raw)
    _reject(ring_path, "not a nubis ring file")


def test_wrong_version(ring_path: Path) -> None:
    raw = bytearray(ring_path.read_bytes())
    struct.pack_into("<I", raw, 8, FORMAT_VERSION + 1)
    ring_path.write_bytes(raw)
    _reject(ring_path, "unsupported ring format version 2")


def _rewrite_header(path: Path, **fields: Any) -> None:
    """Change header fields and re-seal the header digest (a well-formed forgery)."""
    import xxhash

    raw = path.read_bytes()
    start, end = _header_span(raw)
    header = json.loads(raw[start:end])
    header.update(fields)
    body = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(body) <= end - start
    body = body.ljust(end - start)
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body), xxhash.xxh3_128_digest(body))
    path.write_bytes(pre + body + raw[end:])


@pytest.mark.parametrize(("fields", "message"), [
    ({"dtype": "<u8"}, "dtype"),
    ({"part_power": 40}, "part_power"),
    ({"row_lengths": [64, 64]}, "lengths"),
    ({"arrays_nbytes": 1}, "arrays_nbytes"),
    ({"devs": "x"}, "devs"),
    ({"version": None}, "version"),
    ({"arrays_xxh3_128": "0" * 32}, "table checksum"),
])
def test_sealed_but_inconsistent_header(ring_path: Path, fields: dict[str, Any],
                                        message: str) -> None:
    _rewrite_header(ring_path, **fields)
    _reject(ring_path, message)


def test_header_not_json(ring_path: Path) -> None:
    import xxhash

    raw = ring_path.read_bytes()
    start, end = _header_span(raw)
    body = b"{" + b" " * (end - start - 1)
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body), xxhash.xxh3_128_digest(body))
    ring_path.write_bytes(pre + body + raw[end:])
    _reject(ring_path, "not valid JSON")


def test_verify_false_skips_table_checksum(ring_path: Path) -> None:
    raw = bytearray(ring_path.read_bytes())
    raw[-1] ^= 0x01
    ring_path.write_bytes(raw)
    assert load_ring_file(ring_path, verify=False).part_power == 6


@pytest.mark.parametrize(("part_power", "replicas", "lengths"), [
    (4, 3.0, [16, 16, 16]),
    (10, 2.5, [1024, 1024, 512]),
    (10, 2.999, [1024, 1024, 1022]),  # truncated like swift-ring-builder, not rounded
    (0, 1.25, [1, 0]),
    (2, 1.0, [4]),
])
def test_expected_row_lengths_follow_swift(part_power: int, replicas: float,
                                           lengths: list[int]) -> None:
    assert expected_row_lengths(part_power, replicas) == lengths
