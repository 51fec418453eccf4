"""Upload the project's bootable test image set through the image API (for ``nubis up``).

``nubis up`` builds the test image set (kernel, initramfs, small qcow2 root disk;
:mod:`nubis.testimage`) and calls :func:`upload_test_images` once the cloud answers
(``nubis.bootstrap.test_image_post_start``): three public images,
``nubis-test-kernel`` (aki), ``nubis-test-ramdisk`` (ari) and ``nubis-test`` (qcow2
with ``kernel_id``/``ramdisk_id``), uploaded as the bootstrap admin through the
catalog's image endpoint. It is idempotent: an active image of the same name and
checksum is kept, anything else of that name is replaced.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KERNEL, RAMDISK, DISK = "nubis-test-kernel", "nubis-test-ramdisk", "nubis-test"
TIMEOUT = 300.0


class ImageUploadError(RuntimeError):
    """The image API refused a step of the upload (the message says which)."""


@dataclass(frozen=True)
class Session:
    """An admin token and the image endpoint."""

    token: str
    image_url: str

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None, data: Any = None) -> Any:
        """Send one request; return the parsed JSON answer (None when empty)."""
        hdrs = {"X-Auth-Token": self.token, "Accept": "application/json", **(headers or {})}
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(f"{self.image_url}{path}", data=data, headers=hdrs,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ImageUploadError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None
        return json.loads(raw) if raw else None


def admin_session(state_dir: Path, cloud: str = "nubis-admin",
                  service_type: str = "image") -> Session:
    """Log in with the ``clouds.yaml`` the identity bootstrap wrote; find a service's API."""
    doc = yaml.safe_load((state_dir / "clouds.yaml").read_text())
    auth = doc["clouds"][cloud]["auth"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "domain": {"name": auth["user_domain_name"]},
        "password": auth["password"]}}}, "scope": {"project": {
            "name": auth["project_name"], "domain": {"name": auth["project_domain_name"]}}}}}
    req = urllib.request.Request(f"{auth['auth_url']}/auth/tokens",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        token = resp.headers["X-Subject-Token"]
        catalog = json.loads(resp.read())["token"]["catalog"]
    for service in catalog:
        if service["type"] == service_type:
            url = next(e["url"] for e in service["endpoints"] if e["interface"] == "public")
            return Session(token, url.rstrip("/"))
    raise ImageUploadError(f"the catalog has no {service_type} service")


def md5_of(path: Path) -> str:
    """Return the MD5 of a file, read in 1 MiB pieces."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while piece := fh.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def ensure_image(session: Session, name: str, path: Path, disk_format: str,
                 container_format: str, properties: dict[str, str] | None = None) -> str:
    """Return the id of an active public image ``name`` holding ``path``'s bytes."""
    checksum = md5_of(path)
    query = urllib.parse.urlencode({"name": name, "visibility": "public"})
    found = session.call("GET", f"/v2/images?{query}")["images"]
    keep = [i for i in found if i["status"] == "active" and i["checksum"] == checksum
            and all(i.get(k) == v for k, v in (properties or {}).items())]
    for image in found:
        if not keep or image["id"] != keep[0]["id"]:
            session.call("DELETE", f"/v2/images/{image['id']}")
    if keep:
        image_id: str = keep[0]["id"]
        return image_id
    made = session.call("POST", "/v2/images", {
        "name": name, "disk_format": disk_format, "container_format": container_format,
        "visibility": "public", **(properties or {})})
    with path.open("rb") as fh:
        session.call("PUT", f"/v2/images/{made['id']}/file", data=fh, headers={
            "Content-Type": "application/octet-stream",
            "Content-Length": str(path.stat().st_size)})
    shown = session.call("GET", f"/v2/images/{made['id']}")
    if shown["status"] != "active" or shown["checksum"] != checksum:
        raise ImageUploadError(f"{name}: uploaded image is {shown['status']} with checksum "
                               f"{shown['checksum']}, expected {checksum}")
    image_id = made["id"]
    return image_id


def upload_test_images(state_dir: Path, kernel: Path, ramdisk: Path, disk: Path,
                       cmdline: str | None = None) -> dict[str, str]:
    """Upload (or keep) the three test images; return ``{name: image id}``.

    ``cmdline`` becomes the disk image's ``os_command_line`` (the kernel command
    line for direct kernel boot).
    """
    session = admin_session(state_dir)
    kernel_id = ensure_image(session, KERNEL, kernel, "aki", "aki")
    ramdisk_id = ensure_image(session, RAMDISK, ramdisk, "ari", "ari")
    props = {"kernel_id": kernel_id, "ramdisk_id": ramdisk_id}
    if cmdline:
        props["os_command_line"] = cmdline
    disk_id = ensure_image(session, DISK, disk, "qcow2", "bare", props)
    return {KERNEL: kernel_id, RAMDISK: ramdisk_id, DISK: disk_id}
