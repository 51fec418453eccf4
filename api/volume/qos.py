"""QoS specs (``/v3/qos-specs``, admins), their volume types, and the front-end limits.

A QoS spec is a named set of key/value pairs with a consumer: ``back-end`` (the
volume driver's business; nubis' qcow2 files have no such knobs), ``front-end``
(the hypervisor's) or ``both``. A volume type is associated with at most one
spec (the type shows it as ``qos_specs_id``). When a volume is connected, the
front-end keys of its type's spec ride in the connection's ``data.qos_specs``,
Cinder's ``*_per_gb`` keys turned into absolute values for the volume's size; the
compute daemon turns Nova's seven keys into the disk's libvirt ``<iotune>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError, ConflictError, NotFoundError
from nubis.api.shared.rest import read_json
from nubis.api.volume.service import VolumeService, body_of
from nubis.api.volume.store import Record

CONSUMERS = ("front-end", "back-end", "both")
#: Keys Cinder scales by the volume's size (``<key>_per_gb``, ``_per_gb_min``, ``_max``).
PER_GB = ("read_iops_sec", "read_bytes_sec", "write_iops_sec", "write_bytes_sec",
          "total_iops_sec", "total_bytes_sec")
MAX_SPECS = 64


def spec_view(svc: VolumeService, rec: Record) -> dict[str, Any]:
    """Render one QoS spec as Cinder's view builder does (``summary``)."""
    return {"id": rec.id, "name": rec.name, "consumer": rec.get("consumer", "back-end"),
            "specs": dict(rec.get("specs") or {}),
            "links": [{"rel": "self", "href": f"{svc.base_url}/qos-specs/{rec.id}"}]}


#: Keys whose values must be counts (Nova's ``<iotune>`` ones and Cinder's scaling).
NUMERIC = frozenset({*PER_GB, "size_iops_sec",
                     *(f"{k}{suffix}" for k in PER_GB for suffix in ("_per_gb", "_per_gb_min",
                                                                     "_max"))})


def _specs(body: Mapping[str, Any]) -> dict[str, str]:
    """Return the spec keys of a body (400 for junk, or a limit that is not a count)."""
    specs = {k: v for k, v in body.items() if k not in ("name", "consumer")}
    if len(specs) > MAX_SPECS or not all(
            isinstance(k, str) and 0 < len(k) <= 255 and isinstance(v, (str, int, float))
            and not isinstance(v, bool) and len(str(v)) <= 255 for k, v in specs.items()):
        raise BadRequestError("Invalid input received: QoS specs must be at most "
                              f"{MAX_SPECS} string keys and values of at most 255 characters.")
    out = {k: str(v) for k, v in specs.items()}
    for key in NUMERIC & out.keys():
        if not out[key].isdigit() or not out[key].isascii():
            raise BadRequestError(f"Invalid input received: {key} must be a non-negative "
                                  f"integer, not {out[key]!r}.")
    return out


def _consumer(value: Any) -> str:
    if value not in CONSUMERS:
        raise BadRequestError(f"Invalid input received: Valid consumer of QoS specs are: "
                              f"{list(CONSUMERS)}")
    return str(value)


def front_end_specs(svc: VolumeService, volume: Record) -> dict[str, str] | None:
    """Return the front-end QoS specs of a volume's type, scaled to its size (or None)."""
    vtype = svc.store.get("type", str(volume.get("volume_type_id") or ""))
    spec_id = vtype.get("qos_specs_id") if vtype is not None else None
    spec = svc.store.get("qos", spec_id) if spec_id else None
    if spec is None or spec.get("consumer") not in ("front-end", "both"):
        return None
    specs = dict(spec.get("specs") or {})
    size = int(volume.get("size") or 0)
    for key in PER_GB:
        per_gb = specs.pop(f"{key}_per_gb", None)
        if per_gb is None:
            continue
        floor = specs.pop(f"{key}_per_gb_min", "0")
        cap = specs.pop(f"{key}_max", None)
        try:
            value = max(int(floor), int(per_gb) * size)
            specs[key] = str(min(value, int(cap)) if cap is not None else value)
        except ValueError:
            continue  # not numbers: nothing to scale (the hypervisor side skips it too)
    return specs


class QosSpecs:
    """``/v3/qos-specs[/{id}[/delete_keys|/associations|/associate|/disassociate[_all]]]``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    def _admin(self, req: falcon.asgi.Request, what: str) -> None:
        self.svc.require_admin(req, f"volume_extension:qos_specs_manage:{what}")

    def _one(self, qos_id: str) -> Record:
        rec = self.svc.store.get("qos", qos_id)
        if rec is None:
            raise NotFoundError(f"No such QoS spec {qos_id}.")
        return rec

    def _types_of(self, qos_id: str) -> list[Record]:
        return [t for t in self.svc.store.select("type") if t.get("qos_specs_id") == qos_id]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the QoS specs."""
        self._admin(req, "get_all")
        resp.media = {"qos_specs": [
            {k: v for k, v in spec_view(self.svc, r).items() if k != "links"}
            for r in self.svc.store.select("qos")]}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a QoS spec (``name``, ``consumer``, the rest are its keys)."""
        self._admin(req, "create")
        body = body_of(await read_json(req), "qos_specs")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequestError("Please specify a name for QoS specs.")
        consumer = _consumer(body.get("consumer", "back-end"))
        if any(r.name == name for r in self.svc.store.select("qos")):
            raise ConflictError(f"QoS Specs {name} already exists.")
        rec = self.svc.store.insert("qos", str(uuid.uuid4()), "", name, "active",
                                    {"consumer": consumer, "specs": _specs(body)})
        view = spec_view(self.svc, rec)
        resp.media = {"qos_specs": {k: v for k, v in view.items() if k != "links"},
                      "links": view["links"]}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         qos_id: str) -> None:
        """Show one QoS spec."""
        self._admin(req, "get")
        view = spec_view(self.svc, self._one(qos_id))
        resp.media = {"qos_specs": {k: v for k, v in view.items() if k != "links"},
                      "links": view["links"]}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         qos_id: str) -> None:
        """Set keys (and the consumer) of a QoS spec; answer what was set."""
        self._admin(req, "update")
        rec = self._one(qos_id)
        body = body_of(await read_json(req), "qos_specs")
        changes: dict[str, Any] = {"specs": {**(rec.get("specs") or {}), **_specs(body)}}
        if len(changes["specs"]) > MAX_SPECS:
            raise BadRequestError(f"Invalid input received: at most {MAX_SPECS} QoS keys.")
        if "consumer" in body:
            changes["consumer"] = _consumer(body["consumer"])
        self.svc.store.update(rec, **changes)
        resp.media = {"qos_specs": body}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            qos_id: str) -> None:
        """Delete a QoS spec (400 while associated, unless ``force``)."""
        self._admin(req, "delete")
        rec = self._one(qos_id)
        force = req.get_param("force", default="false").lower() in ("true", "1", "yes")
        types = self._types_of(rec.id)
        if types and not force:
            raise BadRequestError(f"QoS Specs {rec.id} is still associated with entities.")
        for vtype in types:
            self.svc.store.update(vtype, qos_specs_id=None)
        self.svc.store.delete(rec.id)
        resp.status = 202

    async def on_put_delete_keys(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                                 qos_id: str) -> None:
        """Remove keys from a QoS spec (404 for a key it lacks)."""
        self._admin(req, "delete")
        rec = self._one(qos_id)
        doc = await read_json(req)
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadRequestError("Missing required element 'keys' in request body.")
        specs = dict(rec.get("specs") or {})
        for key in keys:
            if specs.pop(key, None) is None:
                raise NotFoundError(f"QoS spec {rec.id} has no spec with key {key}.")
        self.svc.store.update(rec, specs=specs)
        resp.status = 202

    async def on_get_associations(self, req: falcon.asgi.Request,
                                  resp: falcon.asgi.Response, qos_id: str) -> None:
        """List the volume types a QoS spec is associated with."""
        self._admin(req, "get")
        rec = self._one(qos_id)
        resp.media = {"qos_associations": [
            {"association_type": "volume_type", "name": t.name, "id": t.id}
            for t in self._types_of(rec.id)]}

    def _type(self, req: falcon.asgi.Request) -> Record:
        type_id = req.get_param("vol_type_id")
        if not type_id:
            raise BadRequestError("Volume Type id must not be None.")
        vtype = self.svc.store.get("type", type_id)
        if vtype is None:
            raise NotFoundError(f"Volume type {type_id} could not be found.")
        return vtype

    async def on_get_associate(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               qos_id: str) -> None:
        """Associate a volume type (``?vol_type_id=``) with the QoS spec."""
        self._admin(req, "update")
        rec, vtype = self._one(qos_id), self._type(req)
        current = vtype.get("qos_specs_id")
        if current not in (None, rec.id):
            raise BadRequestError(f"Type {vtype.id} is already associated with another qos "
                                  f"specs: {current}")
        self.svc.store.update(vtype, qos_specs_id=rec.id)
        resp.status = 202

    async def on_get_disassociate(self, req: falcon.asgi.Request,
                                  resp: falcon.asgi.Response, qos_id: str) -> None:
        """Disassociate one volume type (``?vol_type_id=``) from the QoS spec."""
        self._admin(req, "update")
        rec, vtype = self._one(qos_id), self._type(req)
        if vtype.get("qos_specs_id") == rec.id:
            self.svc.store.update(vtype, qos_specs_id=None)
        resp.status = 202

    async def on_get_disassociate_all(self, req: falcon.asgi.Request,
                                      resp: falcon.asgi.Response, qos_id: str) -> None:
        """Disassociate every volume type from the QoS spec."""
        self._admin(req, "update")
        for vtype in self._types_of(self._one(qos_id).id):
            self.svc.store.update(vtype, qos_specs_id=None)
        resp.status = 202
