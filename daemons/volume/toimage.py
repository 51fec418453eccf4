"""Upload a volume's bytes to the image service (Cinder's ``os-volume_upload_image``).

The volume API creates the (queued) image with the caller's token and hands the
daemon that image's ``/file`` URL, the token and the disk format; the daemon
converts the detached volume into a scratch file of that format beside the
volumes (sparse for raw) and streams it to the image API with its length, as
``openstack image create --file`` would. The scratch file is removed whatever
happens. The URL is the image endpoint of the API's own configuration, never a
user's.
"""

from __future__ import annotations

import http.client
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

from nubis.daemons.volume import qemuimg
from nubis.daemons.volume.backend import FileBackend
from nubis.daemons.volume.errors import BadRequest, ImageUploadError

#: Disk formats a volume can be uploaded as.
FORMATS = ("raw", "qcow2")
#: Bytes sent per write.
CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageTarget:
    """Where a volume's bytes go: the image's data URL, the caller's token, the format."""

    url: str
    token: str
    disk_format: str


def upload(backend: FileBackend, volume_id: str, target: ImageTarget,
           timeout: float) -> int:
    """Convert and send a volume's bytes; return how many were sent."""
    if target.disk_format not in FORMATS:
        raise BadRequest(f"disk format {target.disk_format!r} is not one of {FORMATS}")
    parts = urllib.parse.urlsplit(target.url)
    if parts.scheme != "http" or not parts.hostname:
        raise BadRequest(f"not an http URL: {target.url!r}")
    source = backend.existing(volume_id)
    scratch = backend.root / f".upload-{uuid.uuid4()}.{target.disk_format}"
    try:
        qemuimg.convert(source, scratch, "qcow2", target.disk_format)
        return _send(scratch, parts, target.token, timeout)
    finally:
        scratch.unlink(missing_ok=True)


def _send(path: Path, parts: urllib.parse.SplitResult, token: str, timeout: float) -> int:
    """PUT ``path`` to the image API with its length; raise ImageUploadError unless 204."""
    size = path.stat().st_size
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.putrequest("PUT", parts.path)
        for name, value in (("X-Auth-Token", token),
                            ("Content-Type", "application/octet-stream"),
                            ("Content-Length", str(size))):
            conn.putheader(name, value)
        conn.endheaders()
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                conn.send(chunk)
        resp = conn.getresponse()
        body = resp.read(500)
    except (OSError, http.client.HTTPException) as exc:
        raise ImageUploadError(f"image upload failed: {exc}") from None
    finally:
        conn.close()
    if resp.status != 204:
        raise ImageUploadError(f"the image service answered {resp.status}: "
                               f"{body.decode(errors='replace')}")
    return size
