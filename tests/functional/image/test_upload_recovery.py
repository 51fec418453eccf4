"""Uploads and stages cut off by a dying api process are undone (a real SIGKILL).

The test cloud renews leases every 0.2 s and judges them abandoned after
``IMPORT_TIMEOUT`` (8 s), sweeping every 0.5 s (see conftest).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
import uuid

import pytest

from tests.functional.image.conftest import (
    IMPORT_TIMEOUT,
    SEGMENT,
    ImageCloud,
    api_restarted,
    becomes,
)
from tests.functional.proxy.cloud import eventually

pytestmark = pytest.mark.functional


class Trickle:
    """A hand-made ``PUT`` that sends a segment and a bit, then a byte every 0.1 s.

    It announces four segments, so the api process stores a first segment at
    once and then keeps receiving (and renewing its lease) until :meth:`stop`,
    the connection breaking (the api process died), or ``pieces`` bytes.
    """

    def __init__(self, images: ImageCloud, token: str, image_id: str, resource: str,
                 pieces: int = 3000) -> None:
        url = urllib.parse.urlsplit(f"{images.image_url}/v2/images/{image_id}/{resource}")
        assert url.hostname == "127.0.0.1", url  # only ever talk to loopback
        self.head = (f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nX-Auth-Token: "
                     f"{token}\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Length: {4 * SEGMENT}\r\n\r\n").encode()
        self.address = (url.hostname, url.port or 80)
        self.pieces = pieces
        self.stopped = threading.Event()
        self.broken = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        try:
            with socket.create_connection(self.address, timeout=30) as sock:
                sock.sendall(self.head)
                sock.sendall(os.urandom(SEGMENT + 1024))
                for _ in range(self.pieces):
                    if self.stopped.wait(0.1):
                        return
                    sock.sendall(b"x")
        except OSError:  # the serving process went away
            self.broken.set()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def _new_image(images: ImageCloud, token: str) -> str:
    body = {"name": f"cut-{uuid.uuid4().hex[:6]}", "disk_format": "raw",
            "container_format": "bare"}
    r = images.http("POST", "/v2/images", token, json=body)
    assert r.status_code == 201, r.text
    image_id: str = r.json()["id"]
    return image_id


def _assert_first_segment(images: ImageCloud, image_id: str) -> None:
    names = images.service_objects(image_id)
    assert any(n.endswith("-00001") for n in names), names


def _status(images: ImageCloud, token: str, image_id: str) -> str:
    status: str = images.http("GET", f"/v2/images/{image_id}", token).json()["status"]
    return status


def test_an_upload_and_a_stage_whose_api_process_stopped_are_recovered(
        images: ImageCloud) -> None:
    """A live upload and stage keep going past the bound; killed, they are undone.

    The api process really dies (SIGKILL; the watchdog starts a new one) while
    it receives an upload (``saving``) and a stage (``uploading``), each with a
    first segment stored. While it lived, the leases kept both untouched past
    the abandonment bound; after the kill, the new process's recovery deletes
    the partial objects and puts both images back to ``queued`` without data,
    where an upload and a stage + import work again.
    """
    token, _ = images.login("nubis-demo")
    uploaded, staged = _new_image(images, token), _new_image(images, token)
    senders = [Trickle(images, token, uploaded, "file"),
               Trickle(images, token, staged, "stage")]
    try:
        for image_id in (uploaded, staged):
            eventually(lambda i=image_id: _assert_first_segment(images, i), timeout=120)
        # alive: the leases are renewed, so both outlive the abandonment bound untouched
        alive_until = time.monotonic() + IMPORT_TIMEOUT + 2
        for _ in range(1000):
            assert _status(images, token, uploaded) == "saving"
            assert _status(images, token, staged) == "uploading"
            if time.monotonic() > alive_until:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the bound never passed")
        assert not any(s.broken.is_set() for s in senders)
        old_pid = images.cloud.pid("api")
        images.cloud.kill("api", hold=False)
        api_restarted(images, old_pid)
        for image_id in (uploaded, staged):
            image = becomes(images, token, image_id, "queued")
            assert (image["size"], image["checksum"], image["os_hash_value"]) == (
                None, None, None)
            assert images.service_objects(image_id) == []
            assert images.http("GET", f"/v2/images/{image_id}/file",
                               token).status_code == 204
    finally:
        for sender in senders:
            sender.stop()
    # both images are usable again
    data = os.urandom(100_000)
    r = images.http("PUT", f"/v2/images/{uploaded}/file", token, data=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    assert images.http("GET", f"/v2/images/{uploaded}/file", token).content == data
    conn = images.sdk("nubis-demo")
    image = conn.image.get_image(staged)
    conn.image.stage_image(image, data=data)
    conn.image.import_image(image, method="glance-direct")
    done = becomes(images, token, staged, "active")
    assert done["size"] == len(data)
    for image_id in (uploaded, staged):
        assert images.http("DELETE", f"/v2/images/{image_id}", token).status_code == 204
        assert images.service_objects(image_id) == []
