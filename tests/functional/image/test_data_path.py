"""Image bytes end to end: openstacksdk uploads, 100 MiB round trips, cut uploads.

The cloud stores images in 8 MiB segments (see conftest), so the large uploads
here go through the SLO path with and without an announced length.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.image.conftest import SEGMENT, ImageCloud

pytestmark = pytest.mark.functional

MIB = 1024 * 1024


def _pattern(total: int, seed: int) -> Iterator[bytes]:
    """Yield ``total`` deterministic pseudo-random bytes in 1 MiB pieces."""
    block = hashlib.shake_256(str(seed).encode()).digest(MIB)
    sent = 0
    while sent < total:
        piece = block[: min(MIB, total - sent)]
        sent += len(piece)
        yield piece


class _Reader:
    """A file-like view of :func:`_pattern` with a length (requests sends Content-Length)."""

    def __init__(self, total: int, seed: int) -> None:
        self.total = total
        self.pieces = _pattern(total, seed)
        self.buffer = b""

    def __len__(self) -> int:
        return self.total

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            piece = next(self.pieces, b"")
            if not piece:
                break
            self.buffer += piece
        out, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size],
                                                                  self.buffer[size:])
        return out


def _hashes(total: int, seed: int) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha512()
    for piece in _pattern(total, seed):
        md5.update(piece)
        sha.update(piece)
    return md5.hexdigest(), sha.hexdigest()


def _new_image(images: ImageCloud, token: str, **extra: object) -> str:
    body = {"name": f"img-{uuid.uuid4().hex[:6]}", "disk_format": "raw",
            "container_format": "bare", **extra}
    r = images.http("POST", "/v2/images", token, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "queued" and r.headers["Location"].endswith(r.json()["id"])
    image_id: str = r.json()["id"]
    return image_id


def _download_hashes(images: ImageCloud, token: str, image_id: str) -> tuple[str, str, int,
                                                                              str]:
    md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
    with images.http("GET", f"/v2/images/{image_id}/file", token, stream=True) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(MIB):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
        return md5.hexdigest(), sha.hexdigest(), size, r.headers["Content-MD5"]


def test_openstacksdk_create_image_and_download(images: ImageCloud, tmp_path: Path) -> None:
    src = tmp_path / "sdk.img"
    src.write_bytes(b"".join(_pattern(5 * MIB + 3, 1)))
    conn = images.sdk("nubis-demo")
    name = f"sdk-{uuid.uuid4().hex[:6]}"
    image = conn.create_image(name, filename=str(src), disk_format="raw",
                              container_format="bare", wait=True, timeout=120,
                              validate_checksum=True, os_distro="debian")
    assert image.status == "active" and image.size == src.stat().st_size
    assert image.checksum == hashlib.md5(src.read_bytes(), usedforsecurity=False).hexdigest()
    assert image.virtual_size == image.size  # raw
    got = conn.image.get_image(image.id)
    assert got.os_distro == "debian"
    out = tmp_path / "back.img"
    conn.image.download_image(image, output=str(out))  # verifies Content-MD5
    assert out.read_bytes() == src.read_bytes()
    assert name in [i.name for i in conn.image.images()]
    conn.image.delete_image(image.id)
    assert images.service_objects(image.id) == []


def test_100_mib_round_trip_with_length(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    total = 100 * MIB
    md5, sha = _hashes(total, 2)
    image_id = _new_image(images, token)
    r = images.http("PUT", f"/v2/images/{image_id}/file", token,
                    headers={"Content-Type": "application/octet-stream"},
                    data=_Reader(total, 2))
    assert r.status_code == 204, r.text
    shown = images.http("GET", f"/v2/images/{image_id}", token).json()
    assert (shown["status"], shown["size"], shown["checksum"]) == ("active", total, md5)
    assert (shown["os_hash_algo"], shown["os_hash_value"]) == ("sha512", sha)
    stored = images.service_objects(image_id)
    segments = -(-total // SEGMENT)
    assert len(stored) == segments + 1  # the segments and the SLO manifest
    assert _download_hashes(images, token, image_id) == (md5, sha, total, md5)
    assert images.http("DELETE", f"/v2/images/{image_id}", token).status_code == 204
    assert images.service_objects(image_id) == []


def test_chunked_upload_of_unknown_length(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    total = 2 * SEGMENT + 12345
    md5, sha = _hashes(total, 3)
    image_id = _new_image(images, token)
    r = images.http("PUT", f"/v2/images/{image_id}/file", token,
                    headers={"Content-Type": "application/octet-stream"},
                    data=_pattern(total, 3))  # a generator: sent chunked
    assert r.status_code == 204, r.text
    assert len(images.service_objects(image_id)) == 3 + 1
    assert _download_hashes(images, token, image_id) == (md5, sha, total, md5)
    ranged = images.http("GET", f"/v2/images/{image_id}/file", token,
                         headers={"Range": f"bytes={SEGMENT - 5}-{SEGMENT + 4}"})
    whole = b"".join(_pattern(total, 3))
    assert ranged.status_code == 206 and ranged.content == whole[SEGMENT - 5:SEGMENT + 5]
    images.http("DELETE", f"/v2/images/{image_id}", token)
    empty = _new_image(images, token)
    r = images.http("PUT", f"/v2/images/{empty}/file", token, data=iter([]),
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    shown = images.http("GET", f"/v2/images/{empty}", token).json()
    assert (shown["size"], shown["checksum"]) == (0, hashlib.md5(b"").hexdigest())
    assert images.http("GET", f"/v2/images/{empty}/file", token).content == b""
    images.http("DELETE", f"/v2/images/{empty}", token)


def _cut_upload(images: ImageCloud, token: str, image_id: str, chunked: bool) -> None:
    """Send half of an upload by hand and drop the connection."""
    url = urllib.parse.urlsplit(f"{images.image_url}/v2/images/{image_id}/file")
    framing = ("Transfer-Encoding: chunked" if chunked else f"Content-Length: {20 * MIB}")
    head = (f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nX-Auth-Token: {token}\r\n"
            f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head)
        for piece in _pattern(10 * MIB, 4):
            sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
        time.sleep(0.5)  # let the server pass the bytes on to the object store


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_interrupted_upload_leaves_queued_and_nothing_stored(images: ImageCloud,
                                                             chunked: bool) -> None:
    token, _ = images.login("nubis-demo")
    image_id = _new_image(images, token)
    _cut_upload(images, token, image_id, chunked)
    status = ""
    for _ in range(200):  # bounded: the server notices the disconnect at once
        status = images.http("GET", f"/v2/images/{image_id}", token).json()["status"]
        if status == "queued":
            break
        time.sleep(0.05)
    assert status == "queued"
    shown = images.http("GET", f"/v2/images/{image_id}", token).json()
    assert shown["size"] is None and shown["checksum"] is None
    assert images.service_objects(image_id) == []
    assert images.http("GET", f"/v2/images/{image_id}/file", token).status_code == 204
    # the image can still be uploaded afterwards
    r = images.http("PUT", f"/v2/images/{image_id}/file", token,
                    headers={"Content-Type": "application/octet-stream"}, data=b"whole")
    assert r.status_code == 204
    images.http("DELETE", f"/v2/images/{image_id}", token)


def test_qcow2_virtual_size(images: ImageCloud, tmp_path: Path) -> None:
    disk = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "3G"], check=True)
    token, _ = images.login("nubis-demo")
    image_id = _new_image(images, token, disk_format="qcow2")
    r = images.http("PUT", f"/v2/images/{image_id}/file", token, data=disk.read_bytes(),
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    shown = images.http("GET", f"/v2/images/{image_id}", token).json()
    assert shown["virtual_size"] == 3 * 1024 ** 3 and shown["size"] == disk.stat().st_size
    images.http("DELETE", f"/v2/images/{image_id}", token)
