"""Image benchmark: upload/download MB/s through the image API vs the object store directly.

``python -m nubis.bench image [--size-mib 1024] [--rounds 2]``

One whole cloud from ``nubis up`` (2 proxy workers, the default). Each round
uploads and downloads one image of ``--size-mib`` through the Glance API
(``POST /v2/images``, ``PUT .../file``, ``GET .../file``) and the same bytes as
one object straight through the Swift API of the same proxy, interleaved, with
the same streaming client (nubis' pooled HTTP client, 1 MiB writes, bodies
discarded on download). The image path adds one HTTP hop and MD5 + SHA-512 on
the api process; the target is >= 80 % of the direct figure. Best of the rounds
is reported for each path, and the ratio image/direct.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from nubis.common.httpclient import HTTPClient

MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """Where a path writes and reads."""

    host: str
    port: int


def _split(url: str) -> tuple[Target, str]:
    parts = urllib.parse.urlsplit(url)
    return Target(parts.hostname or "127.0.0.1", parts.port or 80), parts.path


async def _upload(http: HTTPClient, target: Target, path: str, token: str, block: bytes,
                  blocks: int) -> float:
    headers = {"X-Auth-Token": token, "Content-Type": "application/octet-stream"}
    t0 = time.perf_counter()
    ex = await http.open(target.host, target.port, "PUT", path, headers,
                         content_length=len(block) * blocks, fresh=True)
    for _ in range(blocks):
        await ex.write(block)
    await ex.finish()
    resp = await ex.response()
    await resp.read()
    elapsed = time.perf_counter() - t0
    assert resp.status in (201, 204), (resp.status, resp.body[:200])
    return elapsed


async def _download(http: HTTPClient, target: Target, path: str, token: str,
                    expect: int) -> float:
    t0 = time.perf_counter()
    resp = await http.request(target.host, target.port, "GET", path, {"X-Auth-Token": token})
    got = 0
    while chunk := await resp.read_chunk():
        got += len(chunk)
    elapsed = time.perf_counter() - t0
    assert resp.status == 200 and got == expect, (resp.status, got)
    return elapsed


async def _json(http: HTTPClient, target: Target, method: str, path: str, token: str,
                body: object = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else b""
    resp = await http.fetch(target.host, target.port, method, path,
                            {"X-Auth-Token": token, "Content-Type": "application/json"}, data)
    assert resp.status < 300, (resp.status, resp.body[:300])
    return json.loads(resp.body) if resp.body else {}


async def run_rounds(image_url: str, storage_url: str, token: str, size_mib: int,
                     rounds: int) -> dict[str, list[float]]:
    """Interleave image-API and direct transfers; return seconds per transfer."""
    block = hashlib.shake_256(b"nubis image bench").digest(MIB)
    md5 = hashlib.md5(usedforsecurity=False)
    for _ in range(size_mib):
        md5.update(block)
    total = size_mib * MIB
    http = HTTPClient(timeout=600)
    image, image_base = _split(image_url)
    swift, swift_base = _split(storage_url)
    await _json(http, swift, "PUT", f"{swift_base}/bench", token)
    out: dict[str, list[float]] = {k: [] for k in ("image_up", "image_down", "direct_up",
                                                   "direct_down")}
    for r in range(rounds):
        obj = f"{swift_base}/bench/blob-{r}"
        out["direct_up"].append(await _upload(http, swift, obj, token, block, size_mib))
        out["direct_down"].append(await _download(http, swift, obj, token, total))
        await http.fetch(swift.host, swift.port, "DELETE", obj, {"X-Auth-Token": token})
        doc = await _json(http, image, "POST", f"{image_base}/v2/images", token, {
            "name": f"bench-{r}", "disk_format": "raw", "container_format": "bare"})
        file_path = f"{image_base}/v2/images/{doc['id']}/file"
        out["image_up"].append(await _upload(http, image, file_path, token, block, size_mib))
        shown = await _json(http, image, "GET", f"{image_base}/v2/images/{doc['id']}", token)
        assert shown["checksum"] == md5.hexdigest() and shown["size"] == total, shown
        out["image_down"].append(await _download(http, image, file_path, token, total))
        await http.fetch(image.host, image.port, "DELETE", f"{image_base}/v2/images/{doc['id']}",
                         {"X-Auth-Token": token})
    await http.close()
    return out


def report(times: dict[str, list[float]], size_mib: int) -> None:
    """Print MB/s (best round) and the image/direct ratios."""
    mbs = {k: size_mib * MIB / 1e6 / min(v) for k, v in times.items()}
    print(f"\nimage of {size_mib} MiB, best of {len(times['image_up'])} rounds (MB/s):\n")
    print(f"| {'':8} | {'image API':>10} | {'direct Swift':>12} | {'ratio':>6} |")
    print(f"|{'-' * 10}|{'-' * 12}|{'-' * 14}|{'-' * 8}|")
    for way in ("up", "down"):
        img, direct = mbs[f"image_{way}"], mbs[f"direct_{way}"]
        label = "upload" if way == "up" else "download"
        print(f"| {label:8} | {img:10.1f} | {direct:12.1f} | {img / direct:6.2f} |")


def main(argv: list[str]) -> int:
    """Run the benchmark."""
    from tests.functional.proxy.cloud import start_cloud

    parser = argparse.ArgumentParser(prog="python -m nubis.bench image")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nubis-bench-image-") as tmp:
        cloud = start_cloud(Path(tmp) / "state", proxy_workers=2)
        try:
            from tests.functional.image.conftest import ImageCloud

            public = cloud.config.api.resolved_public_url(cloud.config.cluster.bind_ip)
            images = ImageCloud(cloud, f"{public}/image")
            token, project = images.login("nubis-demo")
            storage = f"{cloud.proxy_url}/v1/AUTH_{project}"
            times = asyncio.run(run_rounds(images.image_url, storage, token, args.size_mib,
                                           args.rounds))
        finally:
            cloud.down()
    report(times, args.size_mib)
    return 0
