"""Device names and meta must be clean UTF-8 text: a bad one is refused at ``add``.

An undecodable argv byte reaches Python as a lone surrogate; accepted, it made
every later ``rebalance``/``write_ring`` fail on the ring header's JSON.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from nubis.ring.builder import RingBuilder
from nubis.ring.errors import DeviceError

BAD_TEXT = ["sd\udcff", "s\x00d", "s\x01d", "sd\x7f"]


def _builder() -> RingBuilder:
    b = RingBuilder(4, 1, 0)
    b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="sda", weight=1)
    return b


@pytest.mark.parametrize("name", BAD_TEXT)
def test_add_refuses_bad_device_names(name: str) -> None:
    b = _builder()
    with pytest.raises(DeviceError, match="invalid device name"):
        b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device=name, weight=1)
    assert len(list(b.iter_devs())) == 1


@pytest.mark.parametrize("meta", BAD_TEXT)
def test_add_and_set_info_refuse_bad_meta(meta: str) -> None:
    b = _builder()
    with pytest.raises(DeviceError, match="invalid device meta"):
        b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="sdb", weight=1,
                  meta=meta)
    with pytest.raises(DeviceError, match="invalid device meta"):
        b.set_dev_info(0, {"meta": meta})
    with pytest.raises(DeviceError, match="invalid device name"):
        b.set_dev_info(0, {"device": meta})


def test_unicode_names_are_fine() -> None:
    b = _builder()
    b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="dïsk-ü", weight=1,
              meta="café")
    assert {d.device for d in b.iter_devs()} == {"sda", "dïsk-ü"}


def test_cli_add_with_undecodable_bytes_exits_2_and_keeps_the_file(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("nubis-ring-builder"))
    builder = tmp_path / "x.builder"
    assert subprocess.run([exe, str(builder), "create", "4", "1", "0"],
                          capture_output=True, check=False).returncode == 0
    before = builder.read_bytes()
    for value in (b"r1z1-127.0.0.1:6200/sd\xff", b"r1z1-127.0.0.1:6200/sdb_m\xffeta"):
        proc = subprocess.run([exe.encode(), str(builder).encode(), b"add", value, b"1"],
                              capture_output=True, check=False)
        assert proc.returncode == 2, proc.stderr
        assert b"invalid device" in proc.stderr and b"Traceback" not in proc.stderr
    assert builder.read_bytes() == before
