"""``nubis daemon volume``: the internal HTTP API of one storage host (port 8777).

Only the volume API calls it, with the shared service token in
``X-Service-Token`` (``/healthcheck`` is public). Every call is synchronous
(the API runs it in the background and moves the volume's status):

* ``GET /v1/capacity`` — the pool's total/free/provisioned GiB;
* ``GET /v1/volumes`` — the complete volume files, their sizes and snapshots;
* ``POST /v1/volumes`` — create ``{id, size, source?}`` (``source``: ``{"volume": id}``,
  ``{"volume": id, "snapshot": id}`` or ``{"image": {url, token, disk_format, sha512}}``);
* ``DELETE /v1/volumes/{id}``; ``POST /v1/volumes/{id}/extend`` ``{size}``;
* ``POST|DELETE /v1/volumes/{id}/snapshots[/{sid}]``; ``POST /v1/volumes/{id}/revert``
  ``{snapshot_id}`` (back to that snapshot, which stays);
* ``POST /v1/volumes/{id}/upload`` ``{url, token, disk_format}`` — the volume's bytes to
  an image (:mod:`nubis.daemons.volume.toimage`);
* ``GET /v1/volumes/{id}/connection`` — the file a hypervisor attaches;
* ``POST /v1/volumes/{id}/backup`` / ``restore`` and ``POST /v1/backups/delete`` — see
  :mod:`nubis.daemons.volume.backup`.

Errors are ``{"volumeFault": {"code", "message", "kind"}}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
from nubis.api.shared.rest import read_json
from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import KEEPALIVE_TIMEOUT
from nubis.common.servicetoken import load_or_create
from nubis.daemons.volume import backup as bk
from nubis.daemons.volume import extents, toimage
from nubis.daemons.volume.backend import FileBackend, ImageSource, canonical
from nubis.daemons.volume.config import VolumeConfig
from nubis.daemons.volume.errors import BadRequest, VolumeError
from nubis.daemons.volume.toimage import ImageTarget

LOG = logging.getLogger("nubis.volume")


class Auth:
    """Require the shared service token on every route but ``/healthcheck``."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Raise 401 without the right ``X-Service-Token``."""
        if req.path == "/healthcheck":
            return
        given = (req.get_header("X-Service-Token") or "").encode()
        if not given or not hmac.compare_digest(given, self.token):
            raise falcon.HTTPUnauthorized(description="service token required")


def _field(doc: Any, key: str, kind: type, default: Any = None) -> Any:
    value = doc.get(key, default) if isinstance(doc, dict) else default
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BadRequest(f"'{key}' must be a {kind.__name__}")
    return value


class VolumeHost:
    """What the volume daemon does, over the file backend (blocking; run in threads)."""

    def __init__(self, cfg: VolumeConfig, backend: FileBackend, host: str) -> None:
        self.cfg = cfg
        self.backend = backend
        self.host = host

    def create(self, doc: Any) -> dict[str, Any]:
        """Create one volume as the request says."""
        vid = canonical(_field(doc, "id", str))
        size = _field(doc, "size", int)
        source = doc.get("source") or {}
        if not isinstance(source, dict):
            raise BadRequest("'source' must be an object")
        if "image" in source:
            img = source["image"]
            self.backend.from_image(vid, size, ImageSource(
                _field(img, "url", str), _field(img, "token", str),
                _field(img, "disk_format", str), _field(img, "sha512", str, "")))
        elif "volume" in source:
            snap = source.get("snapshot")
            self.backend.clone(vid, size, _field(source, "volume", str),
                               None if snap is None else _field(source, "snapshot", str))
        else:
            self.backend.create(vid, size)
        return {"id": vid, "size": size, "host": self.host}

    def _target(self, doc: Any) -> bk.Target:
        return bk.Target(_field(doc, "storage_url", str), _field(doc, "token", str),
                         _field(doc, "container", str), self.cfg.transfer_timeout)

    def _scratch(self) -> Path:
        fd, name = tempfile.mkstemp(prefix=".scratch-", suffix=".part", dir=self.backend.root)
        os.close(fd)
        return Path(name)

    def backup(self, volume_id: str, doc: Any) -> dict[str, Any]:
        """Back up a volume into the object store; return the backup's facts."""
        vid = canonical(volume_id)
        spec = bk.BackupSpec(canonical(_field(doc, "backup_id", str)), vid,
                             self.cfg.backup_chunk_size, self.cfg.backup_compression,
                             str(doc.get("parent_metadata") or ""),
                             self.cfg.backup_concurrency)
        store = bk.ObjectStore(self._target(doc))
        # PERF (python -m nubis.bench volume): chunks are read from the qcow2 file
        # itself at the offsets qemu-img map gives, not from a raw export of it.
        reader = extents.open_volume(self.backend.existing(vid))
        if reader is not None:
            with reader:
                meta = bk.backup(reader, spec, store)
        else:
            raw = self._scratch()
            try:
                self.backend.export_raw(vid, raw, force=bool(doc.get("force")))
                with extents.open_raw(raw) as source:
                    meta = bk.backup(source, spec, store)
            finally:
                raw.unlink(missing_ok=True)
        return {"metadata": bk.metadata_name(vid, spec.backup_id),
                "size_bytes": meta["size_bytes"], "object_count": meta["stored_chunks"] + 1}

    def restore(self, volume_id: str, doc: Any) -> dict[str, Any]:
        """Restore a backup into an existing volume of at least its size."""
        vid = canonical(volume_id)
        self.backend.existing(vid)
        size = _field(doc, "size", int)
        raw = self._scratch()
        try:
            got = bk.restore(_field(doc, "metadata", str), raw,
                             bk.ObjectStore(self._target(doc)), self.cfg.backup_concurrency)
            if got > size * bk_gib():
                raise BadRequest(f"backup of {got} bytes does not fit a {size} GiB volume")
            self.backend.replace_from_raw(vid, raw, size)
        finally:
            raw.unlink(missing_ok=True)
        return {"id": vid, "size": size}

    def delete_backup(self, doc: Any) -> None:
        """Delete a backup's objects."""
        bk.delete(_field(doc, "metadata", str), canonical(_field(doc, "volume_id", str)),
                  canonical(_field(doc, "backup_id", str)),
                  bk.ObjectStore(self._target(doc)))


def bk_gib() -> int:
    """Return bytes per GiB."""
    return 1024 ** 3


class Routes:
    """Every route of the daemon (each runs its blocking work in a thread)."""

    def __init__(self, host: VolumeHost) -> None:
        self.h = host
        self.b = host.backend

    async def on_get_health(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Answer OK."""
        resp.content_type = "text/plain"
        resp.text = "OK"

    async def on_get_capacity(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Return the pool's capacity."""
        cap = await asyncio.to_thread(self.b.capacity)
        resp.media = {**asdict(cap), "virtual_free_gb": cap.virtual_free_gb,
                      "host": self.h.host}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the volume files."""
        resp.media = {"volumes": await asyncio.to_thread(self.b.volumes)}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a volume."""
        resp.media = await asyncio.to_thread(self.h.create, await read_json(req))
        resp.status = 201

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            vid: str) -> None:
        """Delete a volume (204 also when it was gone)."""
        await asyncio.to_thread(self.b.delete, vid)
        resp.status = 204

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             vid: str, action: str) -> None:
        """Extend, snapshot, revert, back up or restore a volume."""
        doc = await read_json(req)
        if action == "extend":
            await asyncio.to_thread(self.b.extend, vid, _field(doc, "size", int))
            resp.media = {"size": doc["size"]}
        elif action == "snapshots":
            await asyncio.to_thread(self.b.snapshot, vid, _field(doc, "snapshot_id", str))
            resp.status = 201
        elif action == "upload":
            target = ImageTarget(_field(doc, "url", str), _field(doc, "token", str),
                                 _field(doc, "disk_format", str))
            sent = await asyncio.to_thread(toimage.upload, self.b, vid, target,
                                           self.b.timeout)
            resp.media = {"size": sent}
        elif action == "revert":
            await asyncio.to_thread(self.b.revert, vid, _field(doc, "snapshot_id", str))
            resp.media = {}
        elif action == "backup":
            resp.media = await asyncio.to_thread(self.h.backup, vid, doc)
        elif action == "restore":
            resp.media = await asyncio.to_thread(self.h.restore, vid, doc)
        else:
            raise falcon.HTTPNotFound(description=f"unknown action {action!r}")

    async def on_get_connection(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                                vid: str) -> None:
        """Return the file a hypervisor on this host attaches."""
        path = await asyncio.to_thread(self.b.existing, vid)
        resp.media = {"driver_volume_type": "file", "data": {
            "path": str(path), "format": "qcow2", "host": self.h.host}}

    async def on_delete_snapshot(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                                 vid: str, sid: str) -> None:
        """Delete a snapshot (204 also when it was gone)."""
        await asyncio.to_thread(self.b.delete_snapshot, vid, sid)
        resp.status = 204

    async def on_post_backup_delete(self, req: falcon.asgi.Request,
                                    resp: falcon.asgi.Response) -> None:
        """Delete a backup's objects."""
        await asyncio.to_thread(self.h.delete_backup, await read_json(req))
        resp.status = 204


def _fault(resp: falcon.asgi.Response, status: int, message: str, kind: str) -> None:
    resp.status = status
    resp.media = {"volumeFault": {"code": status, "message": message, "kind": kind}}


def build_app(host: VolumeHost, token: str) -> falcon.asgi.App[Any, Any]:
    """Return the volume daemon's ASGI app."""
    if not token:
        raise ValueError("refusing to serve without a service token")
    from nubis.api.shared.errors import ApiError

    app = falcon.asgi.App(middleware=[Auth(token)])
    app.req_options.strip_url_path_trailing_slash = True

    async def on_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: Exception, params: dict[str, Any]) -> None:
        LOG.exception("unexpected error on %s %s", req.method, req.path)
        _fault(resp, 500, f"unexpected error: {type(ex).__name__}: {ex}", "Unexpected")

    async def on_http(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      ex: falcon.HTTPError, params: dict[str, Any]) -> None:
        _fault(resp, ex.status_code, str(ex.description or ex.title), "HTTPError")

    async def on_volume(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        ex: VolumeError, params: dict[str, Any]) -> None:
        _fault(resp, ex.status, str(ex), type(ex).__name__)

    async def on_api(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     ex: ApiError, params: dict[str, Any]) -> None:
        _fault(resp, ex.status, ex.message, type(ex).__name__)
    app.add_error_handler(Exception, on_unexpected)
    app.add_error_handler(falcon.HTTPError, on_http)
    app.add_error_handler(VolumeError, on_volume)
    app.add_error_handler(ApiError, on_api)
    r = Routes(host)
    app.add_route("/healthcheck", r, suffix="health")
    app.add_route("/v1/capacity", r, suffix="capacity")
    app.add_route("/v1/volumes", r)
    app.add_route("/v1/volumes/{vid}", r, suffix="one")
    app.add_route("/v1/volumes/{vid}/connection", r, suffix="connection")
    app.add_route("/v1/volumes/{vid}/snapshots/{sid}", r, suffix="snapshot")
    app.add_route("/v1/volumes/{vid}/{action}", r, suffix="action")
    app.add_route("/v1/backups/delete", r, suffix="backup_delete")
    return app


def volumes_dir(cfg: VolumeConfig, state_dir: Path) -> Path:
    """Return where volume files live: ``volumes_path``, the state dir, or /var/lib.

    QEMU runs as its own user and must search every directory above a volume it
    attaches; a state dir under ``/root`` (mode 0700) is not reachable, so the
    files then go to a per-state-dir directory under ``/var/lib/nubis``.
    """
    if cfg.volumes_path:
        return Path(cfg.volumes_path).absolute()
    wanted = state_dir / "volume" / "volumes"
    for parent in wanted.parents:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
            return Path("/var/lib/nubis") / f"volume-{digest}"
    return wanted


def service_token(cfg: VolumeConfig, state_dir: Path) -> str:
    """Return the configured service token, or the state dir's (created on first use)."""
    return cfg.service_token or load_or_create(state_dir / "volume" / "service_token")


def run(cfg: VolumeConfig, cluster: ClusterConfig, once: bool = False) -> int:
    """Reconcile the volume directory and serve until stopped."""
    import uvicorn

    state_dir = Path(cluster.state_dir).resolve()
    backend = FileBackend(volumes_dir(cfg, state_dir), cfg.max_over_subscription_ratio,
                          cfg.reserved_percentage, cfg.transfer_timeout)
    backend.setup()
    removed = backend.reconcile()
    if removed:
        LOG.warning("removed %d half-written files: %s", len(removed), removed)
    host = VolumeHost(cfg, backend, cfg.host or socket.gethostname())
    app = build_app(host, service_token(cfg, state_dir))
    if once:
        return 0
    uvicorn.run(app, host=cfg.bind_ip or cluster.bind_ip, port=cfg.port, loop="uvloop",
                http="httptools", lifespan="off", log_level="warning", access_log=False,
                timeout_keep_alive=KEEPALIVE_TIMEOUT)
    return 0
