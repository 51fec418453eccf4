"""1 MiB replica writes: how an object server places them vs flush variants.

``python -m nubis.bench flush [--objects N] [--rounds N] [--modes a,b,...] [--device vda]``

Sixteen threads write 3 x N 1 MiB files (N objects of three replicas), each
mode in alternating rounds, and print objects/s, CPU per file write and the
block device's cache flushes per file write (``/sys/block/<dev>/stat``,
field 16; other processes' flushes are counted too). Modes:

* ``ceiling``: write + ``fsync`` in one directory (``bench swift``'s ceiling);
* ``nubis``: what an object server does (temp file, new hash directory,
  rename, ``fdatasync``, ``fsync`` of the hash dir and of the parent of every
  directory created; :func:`nubis.fastpath.durable.place_durably`);
* ``nodirsync``: the same without the directory syncs (not durable; sizes them);
* ``fadvise``: ``nubis`` after ``posix_fadvise(DONTNEED)`` (writeback starts early);
* ``sfr``: ``nubis`` with ``sync_file_range(WRITE)`` after every 256 KiB;
* ``syncfs``: rename, then one ``syncfs`` per group of concurrent placements
  (leader/follower group commit) instead of the per-file syncs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nubis.fastpath.durable import place_durably

MIB = 1 << 20
THREADS = 16
SFR_WRITE = 2  # SYNC_FILE_RANGE_WRITE
MODES = ("ceiling", "nubis", "nodirsync", "fadvise", "sfr", "syncfs")

_libc = ctypes.CDLL(None, use_errno=True)


class GroupSync:
    """One ``syncfs`` covers every placement made before it started."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._seq = 0
        self._done = 0
        self._busy = False

    def sync(self, fd: int) -> None:
        """Return once a ``syncfs`` started after this call's placement has ended."""
        with self._cv:
            self._seq += 1
            mine = self._seq
            while self._done < mine and self._busy:
                self._cv.wait()
            if self._done >= mine:
                return
            self._busy = True
            upto = self._seq
        try:
            if _libc.syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            with self._cv:
                self._done = max(self._done, upto)
                self._busy = False
                self._cv.notify_all()


def device_flushes(device: str) -> int:
    """Return the device's completed cache flushes (0 if the kernel does not say)."""
    try:
        fields = Path(f"/sys/block/{device}/stat").read_text().split()
    except OSError:
        return 0
    return int(fields[15]) if len(fields) > 15 else 0


def writer(root: Path, mode: str, data: bytes) -> Callable[[int], None]:
    """Return a function writing replica ``i`` in ``mode``."""
    group = GroupSync()

    def one(i: int) -> None:
        tmp = root / "tmp" / f"{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if mode == "ceiling":
                os.write(fd, data)
                os.fsync(fd)
                return
            _write_body(fd, mode, data)
            h = f"{i:032x}"
            dest = root / "objects" / str(i % 1024) / h[-3:] / h
            target = dest / "x.data"
            if mode in ("nodirsync", "syncfs"):
                dest.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, target)
                if mode == "syncfs":
                    group.sync(fd)
                else:
                    os.fdatasync(fd)
                return
            place_durably(os.fsencode(tmp), os.fsencode(dest), os.fsencode(target), fd, True)
        finally:
            os.close(fd)

    return one


def _write_body(fd: int, mode: str, data: bytes) -> None:
    if mode != "sfr":
        os.write(fd, data)
        if mode == "fadvise":
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return
    step = 1 << 18
    for off in range(0, len(data), step):
        os.write(fd, data[off:off + step])
        _libc.sync_file_range(fd, ctypes.c_longlong(off), ctypes.c_longlong(step), SFR_WRITE)


def run(base: Path, mode: str, objects: int, device: str) -> tuple[float, float, float]:
    """Return objects/s, CPU ms per file write and flushes per file write."""
    root = base / mode
    (root / "tmp").mkdir(parents=True)
    one = writer(root, mode, os.urandom(MIB))
    writes = 3 * objects
    f0, c0, t0 = device_flushes(device), os.times(), time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(writes)))
    elapsed, c1, f1 = time.perf_counter() - t0, os.times(), device_flushes(device)
    shutil.rmtree(root, ignore_errors=True)
    cpu = (c1.user - c0.user + c1.system - c0.system) / writes * 1000
    return objects / elapsed, cpu, (f1 - f0) / writes


def main(argv: list[str]) -> int:
    """Run the modes in alternating rounds and print one line per measurement."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench flush")
    ap.add_argument("--objects", type=int, default=100, help="objects (x 3 files) per mode")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--device", default="vda", help="block device under the scratch dir")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        ap.error(f"unknown modes: {sorted(unknown)}")
    base = Path(tempfile.mkdtemp(prefix="nubis-flush-",
                                 dir=os.environ.get("NUBIS_BENCH_DIR")))
    try:
        print(f"load average {os.getloadavg()}", flush=True)
        for r in range(args.rounds):
            for mode in modes:
                ops, cpu, flushes = run(base, mode, args.objects, args.device)
                print(f"round {r + 1} {mode:10} {ops:7.1f} objects/s  "
                      f"CPU {cpu:.2f} ms/write  {flushes:.2f} flushes/write", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0
