"""The initramfs layout: newc archive, module ordering from .modinfo, /init."""

from __future__ import annotations

import gzip
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from nubis.testimage import initramfs
from nubis.testimage.errors import TestImageError


def fake_ko(info: dict[str, str]) -> bytes:
    """A minimal ELF64 LE object whose only real section is .modinfo."""
    modinfo = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    data_off = 64
    shstr_off = data_off + len(modinfo)
    shoff = (shstr_off + len(shstrtab) + 7) & ~7
    ident = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0,
                                 64, 3, 2)
    body = bytearray(header + modinfo + shstrtab)
    body += b"\0" * (shoff - len(body))
    sec = struct.Struct("<IIQQQQIIQQ")
    body += sec.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    body += sec.pack(1, 1, 0, 0, data_off, len(modinfo), 0, 0, 1, 0)
    body += sec.pack(10, 3, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0)
    return bytes(body)


def read_newc(data: bytes) -> list[tuple[str, int, bytes, tuple[int, int]]]:
    out, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + filesize]
        pos += filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out.append((name, fields[1], body, (fields[9], fields[10])))


def test_modinfo_reads_depends() -> None:
    info = initramfs.modinfo(fake_ko({"name": "sr_mod", "depends": "cdrom,scsi_mod"}))
    assert info["depends"] == "cdrom,scsi_mod"
    assert info["name"] == "sr_mod"


def test_modinfo_rejects_non_elf() -> None:
    with pytest.raises(TestImageError):
        initramfs.modinfo(b"not an elf at all" * 8)


def test_resolve_orders_dependencies_first() -> None:
    deps = {"sr_mod": ["cdrom", "scsi_mod"], "scsi_mod": ["scsi_common"], "cdrom": [],
            "scsi_common": [], "isofs": []}
    order = initramfs.resolve_modules(["isofs", "sr_mod"], deps)
    assert order == ["isofs", "cdrom", "scsi_common", "scsi_mod", "sr_mod"]
    for name, needs in deps.items():
        if name in order:
            assert all(order.index(n) < order.index(name) for n in needs)


def test_resolve_errors() -> None:
    with pytest.raises(TestImageError, match="not found"):
        initramfs.resolve_modules(["a"], {"a": ["b"]})
    with pytest.raises(TestImageError, match="cycle"):
        initramfs.resolve_modules(["a"], {"a": ["b"], "b": ["a"]})


def test_module_closure_from_files(tmp_path: Path) -> None:
    tree = tmp_path / "kernel" / "drivers"
    tree.mkdir(parents=True)
    (tree / "sr_mod.ko").write_bytes(fake_ko({"depends": "cdrom"}))
    (tree / "cdrom.ko").write_bytes(fake_ko({"depends": ""}))
    (tree / "virtio-blk.ko").write_bytes(fake_ko({"depends": ""}))
    (tree / "unused.ko").write_bytes(fake_ko({"depends": ""}))
    got = initramfs.module_closure(tmp_path, ["sr_mod", "virtio_blk"])
    assert [n for n, _ in got] == ["cdrom", "sr_mod", "virtio_blk"]
    assert got[2][1].name == "virtio-blk.ko"


def test_newc_round_trip_and_system_cpio(tmp_path: Path) -> None:
    members = initramfs.entries(b"BUSYBOX", [("cdrom", b"CD"), ("sr_mod", b"SR")])
    archive = initramfs.write_newc(members)
    got = {name: (mode, body, rdev) for name, mode, body, rdev in read_newc(archive)}
    assert stat.S_ISCHR(got["dev/console"][0]) and got["dev/console"][2] == (5, 1)
    assert got["init"][0] & 0o111 and got["init"][1] == initramfs.INIT_SCRIPT.encode()
    assert got["bin/busybox"][0] & 0o111
    assert got["etc/modules"][1] == b"cdrom.ko\nsr_mod.ko\n"
    assert stat.S_ISDIR(got["mnt/config"][0])
    # parents come before children
    names = [n for n, *_ in read_newc(archive)]
    for n in names:
        if "/" in n:
            assert names.index(n.rsplit("/", 1)[0]) < names.index(n)
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=archive, capture_output=True,
                             check=True).stdout.decode().split()
    assert listing == names


def test_build_is_gzip_and_reproducible(tmp_path: Path) -> None:
    (tmp_path / "busybox").write_bytes(b"BB")
    mods = tmp_path / "mods"
    mods.mkdir()
    for name in initramfs.WANTED_MODULES:
        (mods / f"{name}.ko").write_bytes(fake_ko({"depends": ""}))
    one = initramfs.build(tmp_path / "busybox", mods)
    assert one == initramfs.build(tmp_path / "busybox", mods)
    names = [n for n, *_ in read_newc(gzip.decompress(one))]
    assert {f"lib/modules/{m}.ko" for m in initramfs.WANTED_MODULES} <= set(names)


def test_init_script() -> None:
    script = initramfs.INIT_SCRIPT
    assert script.startswith("#!/bin/busybox sh\n")
    assert initramfs.BOOT_LINE in script and initramfs.READY_LINE in script
    assert "LABEL=config-2" in script and "openstack/latest/meta_data.json" in script
    assert "poweroff -f" in script and "Power Button" in script
    assert "@" not in script.replace("$@", "")  # every placeholder substituted
    # the boot line comes before the slow module loading
    assert script.index(initramfs.BOOT_LINE) < script.index("insmod")
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
