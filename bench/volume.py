"""Volume benchmark: create-from-image and backup/restore MB/s vs their references.

``python -m nubis.bench volume [--size-mib 1024] [--rounds 2]``

One whole cloud from ``nubis up``. A raw image of ``--size-mib`` (one random MiB
repeated, so zlib cannot shrink it) is uploaded once. Each round, interleaved:

* **create-from-image**: ``POST /volumes`` with ``imageRef`` until ``available``
  (download, sha512 check, ``qemu-img convert`` to qcow2) vs ``qemu-img convert -f
  raw -O qcow2`` of the same file on the same disk (the reference; target >= 80 %);
* **backup**: ``POST /backups`` of that volume until ``available`` (export to raw,
  sha256 + zlib per chunk, chunks PUT to the proxy) vs one PUT of the same bytes as
  a single object straight to the proxy (the reference; target >= 80 %);
* **restore**: ``POST /backups/{id}/restore`` into a new volume until ``available``.

Best of the rounds is reported for each path (MB/s of the volume's bytes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _wait(get: Any, ident: str, status: str = "available", bound: float = 3600) -> float:
    t0 = time.perf_counter()
    while True:
        res = get(ident)
        if res.status == status:
            return time.perf_counter() - t0
        if "error" in str(res.status) or time.perf_counter() - t0 > bound:
            raise RuntimeError(f"{ident}: {res.status}")
        time.sleep(0.1)


def _make_image(path: Path, size_mib: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size_mib):
            out.write(block)


def _convert_reference(src: Path, tmp: Path) -> float:
    dst = tmp / "ref.qcow2"
    t0 = time.perf_counter()
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(src),
                    str(dst)], check=True)
    elapsed = time.perf_counter() - t0
    dst.unlink()
    return elapsed


def _upload_reference(conn: Any, src: Path) -> float:
    import requests

    url = conn.object_store.get_endpoint().rstrip("/")
    headers = {"X-Auth-Token": conn.auth_token}
    requests.put(f"{url}/bench-ref", headers=headers, timeout=60).raise_for_status()
    t0 = time.perf_counter()
    with src.open("rb") as body:
        r = requests.put(f"{url}/bench-ref/data", data=body, headers=headers, timeout=3600)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    requests.delete(f"{url}/bench-ref/data", headers=headers, timeout=60)
    return elapsed


def run_rounds(conn: Any, src: Path, tmp: Path, size_mib: int,
               rounds: int) -> dict[str, list[float]]:
    """Return the seconds of every path in every round."""
    image = conn.image.create_image(name="bench-volume", filename=str(src),
                                    disk_format="raw", container_format="bare",
                                    allow_duplicates=True)
    bs = conn.block_storage
    size_gib = max(1, -(-size_mib // 1024))
    times: dict[str, list[float]] = {k: [] for k in (
        "qemu-img convert", "create-from-image", "object PUT", "backup", "restore")}
    try:
        for _ in range(rounds):
            times["qemu-img convert"].append(_convert_reference(src, tmp))
            t0 = time.perf_counter()
            vol = bs.create_volume(size=size_gib, image_id=image.id, name="bench")
            _wait(bs.get_volume, vol.id)
            times["create-from-image"].append(time.perf_counter() - t0)
            times["object PUT"].append(_upload_reference(conn, src))
            t0 = time.perf_counter()
            backup = bs.create_backup(volume_id=vol.id, name="bench")
            _wait(bs.get_backup, backup.id)
            times["backup"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            restored = bs.restore_backup(backup.id, name="bench-restored")
            _wait(bs.get_volume, restored["volume_id"])
            times["restore"].append(time.perf_counter() - t0)
            bs.delete_backup(backup.id)
            for vid in (vol.id, restored["volume_id"]):
                bs.delete_volume(vid)
            time.sleep(2)
    finally:
        conn.image.delete_image(image.id)
    return times


def report(times: dict[str, list[float]], size_mib: int) -> None:
    """Print best MB/s per path and the two ratios."""
    best = {k: size_mib * MIB / 1e6 / min(v) for k, v in times.items() if v}
    for name, mbs in best.items():
        print(f"{name:>18}: {mbs:8.1f} MB/s")
    print(f"create-from-image / qemu-img convert: "
          f"{best['create-from-image'] / best['qemu-img convert']:.2f}")
    print(f"backup / object PUT: {best['backup'] / best['object PUT']:.2f}")


def main(argv: list[str]) -> int:
    """Run the benchmark on a fresh cloud."""
    from tests.functional.proxy.cloud import start_cloud

    p = argparse.ArgumentParser(prog="python -m nubis.bench volume")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nubis-bench-volume-", dir="/var/tmp") as tmp:
        os.chmod(tmp, 0o711)
        cloud = start_cloud(Path(tmp) / "state", proxy_workers=2)
        try:
            src = Path(tmp) / "image.raw"
            _make_image(src, args.size_mib)
            os.environ["OS_CLIENT_CONFIG_FILE"] = str(cloud.state / "clouds.yaml")
            import openstack

            conn = openstack.connect(cloud="nubis-demo")
            report(run_rounds(conn, src, Path(tmp), args.size_mib, args.rounds),
                   args.size_mib)
        finally:
            cloud.down()
    return 0
