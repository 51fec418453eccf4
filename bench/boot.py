"""Boot benchmark: the test image under libvirt + TCG, vs plain QEMU; or through the API.

``python -m nubis.bench boot [--rounds N] [--state-dir var]``; with ``--api``, boots
through the compute API of a running cloud (:mod:`nubis.bench.bootapi`).

Per round, interleaved so the (noisy, shared) machine loads both alike:

1. *qemu*: ``qemu-system-x86_64`` run directly with the test kernel + initrd and
   ``nubis.poweroff``: process start -> guest printed its boot line and powered off.
2. *libvirt*: the same guest as a transient libvirt domain (``probe_boot``):
   ``createXML`` -> powered off. The ratio to (1) is what libvirt costs.
3. *driver*: a full instance through ``LibvirtDriver``: ``spawn`` (qcow2 overlay,
   config drive, define, start), spawn -> ``nubis-test-image booted`` on the
   console, -> ``ready`` (config drive read, user data printed), ACPI shutdown,
   delete.

Needs root (libvirtd). Reports medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

from nubis.daemons.compute import libvirthost
from nubis.daemons.compute.configdrive import InstanceMetadata
from nubis.daemons.compute.driver import DiskImage, DriverConfig, InstanceSpec, LibvirtDriver

from nubis.testimage import TestImageSet, build_test_image, default_cache_dir
from nubis.testimage.initramfs import BOOT_LINE, POWEROFF_ARG, READY_LINE

BOUND = 180.0


def raw_qemu(image: TestImageSet, work: Path) -> float:
    """Seconds from starting QEMU directly until the guest powered itself off."""
    log = work / "raw-console.log"
    argv = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-cpu", "qemu64", "-m", "128",
            "-nodefaults", "-display", "none", "-no-reboot",
            "-kernel", str(image.kernel.path), "-initrd", str(image.ramdisk.path),
            "-append", f"{image.cmdline} {POWEROFF_ARG}", "-serial", f"file:{log}"]
    start = time.monotonic()
    subprocess.run(argv, check=True, timeout=BOUND, capture_output=True)
    seconds = time.monotonic() - start
    if BOOT_LINE not in log.read_text(errors="replace"):
        raise RuntimeError("plain QEMU guest did not print its boot line")
    return seconds


def via_libvirt(conn: object, image: TestImageSet, work: Path) -> float:
    """Seconds from ``createXML`` until the same guest powered itself off."""
    result = libvirthost.probe_boot(conn, work, image.kernel.path, image.ramdisk.path,
                                    domain_type="qemu",
                                    cmdline=f"{image.cmdline} {POWEROFF_ARG}",
                                    expect=BOOT_LINE, bound=BOUND)
    if not result.ok:
        raise RuntimeError(result.detail)
    return result.seconds


def _wait_line(driver: LibvirtDriver, uuid: str, line: str) -> float:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if line.encode() in driver.console_log(uuid):
            return time.monotonic()
        time.sleep(0.02)
    raise RuntimeError(f"{line!r} not seen within {BOUND:.0f} s")


def via_driver(driver: LibvirtDriver, image: TestImageSet) -> dict[str, float]:
    """One full instance: spawn, console lines, ACPI shutdown, delete (seconds each)."""
    uuid = str(uuidlib.uuid4())
    md = InstanceMetadata(uuid=uuid, hostname="bench", name="bench", project_id="bench",
                          user_data=b"#!/bin/sh\necho bench\n")
    spec = InstanceSpec(uuid=uuid, name="bench", vcpus=1, memory_mib=128,
                        disk=DiskImage(image.disk.sha512), kernel_sha512=image.kernel.sha512,
                        ramdisk_sha512=image.ramdisk.sha512, cmdline=image.cmdline,
                        metadata=md)
    t0 = time.monotonic()
    try:
        driver.spawn(spec)
        t1 = time.monotonic()
        booted = _wait_line(driver, uuid, BOOT_LINE)
        ready = _wait_line(driver, uuid, READY_LINE)
        t2 = time.monotonic()
        driver.shutdown(uuid, timeout=BOUND)
        t3 = time.monotonic()
    finally:
        t4 = time.monotonic()
        driver.delete(uuid)
    return {"spawn": t1 - t0, "spawn->booted": booted - t0, "spawn->ready": ready - t0,
            "acpi shutdown": t3 - t2, "delete": time.monotonic() - t4}


def main(argv: list[str]) -> int:
    """Run the boot benchmark and print medians."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench boot")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--state-dir", default="var", type=Path)
    ap.add_argument("--api", action="store_true",
                    help="boot through the compute API of the running cloud in --state-dir")
    ap.add_argument("--concurrent", type=int, default=10)
    args = ap.parse_args(argv)
    if args.api:
        from nubis.bench import bootapi

        return bootapi.run(args.state_dir, max(1, min(args.rounds, 20)),
                           max(1, min(args.concurrent, 50)))
    image = build_test_image(default_cache_dir(args.state_dir))
    libvirthost.ensure_libvirtd()
    conn = libvirthost.connect()
    work = Path(tempfile.mkdtemp(prefix="nubis-bench-boot-", dir="/var/tmp"))
    os.chmod(work, 0o711)
    try:
        driver = LibvirtDriver(DriverConfig(state_dir=work / "compute", domain_type="qemu"))
        driver.setup()
        for f in image.files():
            driver.images.add_file(f.path, f.sha512)
        raw, virt, full = [], [], []
        for i in range(max(1, min(args.rounds, 20))):
            raw.append(raw_qemu(image, work))
            virt.append(via_libvirt(conn, image, work))
            full.append(via_driver(driver, image))
            print(f"round {i + 1}: qemu {raw[-1]:.2f} s, libvirt {virt[-1]:.2f} s, "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in full[-1].items()), flush=True)
    finally:
        conn.close()
        shutil.rmtree(work, ignore_errors=True)
    med_raw, med_virt = statistics.median(raw), statistics.median(virt)
    print(f"\nmedian of {len(raw)} (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs)")
    print(f"  boot + power-off, plain QEMU      {med_raw:6.2f} s")
    print(f"  boot + power-off, libvirt        {med_virt:6.2f} s   "
          f"ratio libvirt/qemu {med_virt / med_raw:.2f}")
    for key in full[0]:
        print(f"  driver {key:25} {statistics.median(r[key] for r in full):6.2f} s")
    return 0
