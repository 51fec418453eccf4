"""Version documents, flavors (+ extra specs, access), keypairs, limits and quota sets."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid as uuidlib
from typing import Any

import falcon.asgi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from nubis.api.compute.errors import MAX_VERSION, MIN_VERSION, QuotaExceededError
from nubis.api.compute.model import Flavor
from nubis.api.compute.service import ComputeService, Version, auth, body_of, mv_of
from nubis.api.compute.views import flavor_brief, flavor_detail, keypair_show, keypair_view
from nubis.api.shared.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from nubis.api.shared.rest import read_json

_KEYPAIR_NAME = re.compile(r"^[a-zA-Z0-9 _-]+$")
_KEYPAIR_NAME_292 = re.compile(r"^[a-zA-Z0-9 @._-]+$")
_FLAVOR_ID = re.compile(r"^[\w.\- ]*$")
_SPEC_KEY = re.compile(r"^[\w.\-:]+$")


def version_doc(base: str) -> dict[str, Any]:
    """Return the v2.1 version document."""
    return {"id": "v2.1", "status": "CURRENT",
            "version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
            "min_version": f"{MIN_VERSION[0]}.{MIN_VERSION[1]}",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/v2.1/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


class Versions:
    """``GET /compute`` (every version) and ``GET /compute/v2.1`` (one), unauthenticated."""

    auth_required = False

    def __init__(self, svc: ComputeService, single: bool) -> None:
        self.svc = svc
        self.single = single

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return the version document(s)."""
        doc = version_doc(self.svc.root_url)
        resp.media = {"version": doc} if self.single else {"versions": [doc]}


# --- flavors -----------------------------------------------------------------------------


def _int_field(body: dict[str, Any], key: str, minimum: int, default: int | None = None,
               maximum: int = 2147483647) -> int:
    value = body.get(key, default)
    if value is None:
        raise BadRequestError(f"'{key}' is a required property")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise BadRequestError(f"Invalid input for field/attribute {key}. Value: {value}. "
                              f"must be an integer between {minimum} and {maximum}")
    return value


def parse_flavor(body: Any, mv: Version) -> dict[str, Any]:
    """Validate ``POST /flavors``; return the row values."""
    if not isinstance(body, dict) or not isinstance(body.get("flavor"), dict):
        raise BadRequestError("Invalid input for field/attribute flavor. "
                              "'flavor' is a required property")
    f = body["flavor"]
    name = f.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequestError("Invalid input for field/attribute name. "
                              "must be a non-empty string of at most 255 characters")
    flavorid = f.get("id")
    if flavorid is None or flavorid == "auto":
        flavorid = str(uuidlib.uuid4())
    if isinstance(flavorid, int) and not isinstance(flavorid, bool):
        flavorid = str(flavorid)
    if not isinstance(flavorid, str) or not flavorid or len(flavorid) > 255 \
            or not _FLAVOR_ID.match(flavorid):
        raise BadRequestError("Invalid input for field/attribute id.")
    is_public = f.get("os-flavor-access:is_public", True)
    if not isinstance(is_public, bool):
        raise BadRequestError("Invalid input for field/attribute "
                              "os-flavor-access:is_public. must be a boolean")
    rxtx = f.get("rxtx_factor", 1.0)
    if not isinstance(rxtx, int | float) or isinstance(rxtx, bool) or not 0 < rxtx <= 3.4e38:
        raise BadRequestError("Invalid input for field/attribute rxtx_factor.")
    desc = f.get("description")
    if desc is not None and (mv < (2, 55) or not isinstance(desc, str) or len(desc) > 65535):
        raise BadRequestError("Invalid input for field/attribute description.")
    return {"flavorid": flavorid, "name": name.strip(),
            "vcpus": _int_field(f, "vcpus", 1), "memory_mb": _int_field(f, "ram", 1),
            "root_gb": _int_field(f, "disk", 0),
            "ephemeral_gb": _int_field(f, "OS-FLV-EXT-DATA:ephemeral", 0, 0),
            "swap": _int_field(f, "swap", 0, 0) if f.get("swap") != "" else 0,
            "rxtx_factor": float(rxtx), "is_public": is_public, "disabled": False,
            "description": desc}


class Flavors:
    """``/flavors``, ``/flavors/detail`` and ``/flavors/{id}``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _visible(self, req: falcon.asgi.Request) -> list[Flavor]:
        ctx = auth(req)
        raw = req.get_param("is_public")
        if ctx.is_admin:
            is_public: bool | None = {"none": None, "false": False, "0": False,
                                      "no": False}.get((raw or "true").lower(), True)
        else:
            is_public = True
        sort_key = req.get_param("sort_key") or "flavorid"
        if sort_key not in ("flavorid", "name", "memory_mb", "root_gb", "vcpus",
                            "ephemeral_gb", "swap", "rxtx_factor", "id", "created_at"):
            raise BadRequestError(f"Invalid sort_key {sort_key}")
        sort_dir = req.get_param("sort_dir") or "asc"
        if sort_dir not in ("asc", "desc"):
            raise BadRequestError(f"Invalid sort_dir {sort_dir}")
        flavors = self.svc.store.list_flavors(
            is_public, None if ctx.is_admin else ctx.project_id,
            self.svc.int_param(req, "minRam"), self.svc.int_param(req, "minDisk"),
            sort_key, sort_dir)
        return self.svc.page(req, flavors, lambda f: f.flavorid, "flavor")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List flavors (id, name, links)."""
        mv = mv_of(req)
        resp.media = {"flavors": [flavor_brief(f, self.svc.base_url, mv)
                                  for f in self._visible(req)]}

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List flavors with their sizes."""
        mv = mv_of(req)
        resp.media = {"flavors": [flavor_detail(f, self.svc.base_url, mv)
                                  for f in self._visible(req)]}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a flavor (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-manage:create")
        mv = mv_of(req)
        flavor = self.svc.store.create_flavor(parse_flavor(await read_json(req), mv))
        resp.media = {"flavor": flavor_detail(flavor, self.svc.base_url, mv)}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         flavor_id: str) -> None:
        """Show a flavor."""
        flavor = self.svc.flavor(req, flavor_id)
        resp.media = {"flavor": flavor_detail(flavor, self.svc.base_url, mv_of(req))}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         flavor_id: str) -> None:
        """Update a flavor's description (2.55+, admin)."""
        mv = mv_of(req)
        if mv < (2, 55):
            raise falcon.HTTPMethodNotAllowed(["GET", "DELETE"])
        self.svc.require_admin(req, "os_compute_api:os-flavor-manage:update")
        flavor = self.svc.flavor(req, flavor_id)
        body = await read_json(req)
        desc = body.get("flavor", {}).get("description") if isinstance(body, dict) else None
        if desc is not None and not isinstance(desc, str):
            raise BadRequestError("Invalid input for field/attribute description.")
        self.svc.store.set_description(flavor, desc)
        resp.media = {"flavor": flavor_detail(self.svc.flavor(req, flavor_id),
                                              self.svc.base_url, mv)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            flavor_id: str) -> None:
        """Delete a flavor (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-manage:delete")
        self.svc.store.delete_flavor(self.svc.flavor(req, flavor_id))
        resp.status = 202


class ExtraSpecs:
    """``/flavors/{id}/os-extra_specs[/{key}]``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     flavor_id: str) -> None:
        """Return every extra spec."""
        resp.media = {"extra_specs": dict(self.svc.flavor(req, flavor_id).extra_specs)}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      flavor_id: str) -> None:
        """Create or update extra specs (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-extra-specs:create")
        flavor = self.svc.flavor(req, flavor_id)
        specs = _specs(body_of(await read_json(req), "extra_specs"))
        self.svc.store.set_extra_specs(flavor, specs)
        resp.media = {"extra_specs": specs}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         flavor_id: str, key: str) -> None:
        """Return one extra spec."""
        specs = self.svc.flavor(req, flavor_id).extra_specs
        if key not in specs:
            raise NotFoundError(f"Flavor {flavor_id} has no extra specs with key {key}.")
        resp.media = {key: specs[key]}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         flavor_id: str, key: str) -> None:
        """Set one extra spec (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-extra-specs:update")
        flavor = self.svc.flavor(req, flavor_id)
        body = await read_json(req)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequestError("Request body contains too many items")
        if key not in body:
            raise BadRequestError("Request body and URI mismatch")
        specs = _specs(body)
        self.svc.store.set_extra_specs(flavor, specs)
        resp.media = specs

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            flavor_id: str, key: str) -> None:
        """Delete one extra spec (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-extra-specs:delete")
        if not self.svc.store.delete_extra_spec(self.svc.flavor(req, flavor_id), key):
            raise NotFoundError(f"Flavor {flavor_id} has no extra specs with key {key}.")
        resp.status = 202


def _specs(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise BadRequestError("Invalid input for field/attribute extra_specs. "
                              "must be an object")
    out = {}
    for key, value in raw.items():
        if not 1 <= len(key) <= 255 or not _SPEC_KEY.match(key):
            raise BadRequestError(f"Invalid input for field/attribute extra_specs. "
                                  f"'{key}' is not a valid key")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadRequestError(f"Invalid input for field/attribute {key}. "
                                  "must be a string or number")
        text = str(value)
        if len(text) > 255:
            raise BadRequestError(f"Invalid input for field/attribute {key}. too long")
        out[key] = text
    return out


class FlavorAccess:
    """``GET /flavors/{id}/os-flavor-access`` and the add/remove tenant actions."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _view(self, flavor: Flavor) -> dict[str, Any]:
        return {"flavor_access": [{"flavor_id": flavor.flavorid, "tenant_id": p}
                                  for p in self.svc.store.flavor_access(flavor)]}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     flavor_id: str) -> None:
        """List the projects of a private flavor (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-access")
        flavor = self.svc.flavor(req, flavor_id)
        if flavor.is_public:
            raise NotFoundError("Access list not available for public flavors.")
        resp.media = self._view(flavor)

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             flavor_id: str) -> None:
        """``addTenantAccess`` / ``removeTenantAccess`` (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-flavor-access:add_tenant_access")
        flavor = self.svc.flavor(req, flavor_id)
        body = await read_json(req)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequestError("Malformed request body")
        action, arg = next(iter(body.items()))
        if action not in ("addTenantAccess", "removeTenantAccess") or not isinstance(
                arg, dict) or not isinstance(arg.get("tenant"), str) or not arg["tenant"]:
            raise BadRequestError(f"There is no such action: {action}")
        if flavor.is_public:
            raise ConflictError("Can not add access to a public flavor.")
        changed = self.svc.store.set_flavor_access(flavor, arg["tenant"],
                                                   action == "addTenantAccess")
        if not changed:
            if action == "addTenantAccess":
                raise ConflictError(f"Flavor access already exists for flavor {flavor_id} "
                                    f"and project {arg['tenant']} combination.")
            raise NotFoundError(f"Flavor access not found for {flavor_id} / "
                                f"{arg['tenant']} combination.")
        resp.media = self._view(flavor)


# --- keypairs ----------------------------------------------------------------------------


def fingerprint(public_key: str) -> str:
    """Return the MD5 fingerprint of an OpenSSH public key (Nova's format)."""
    try:
        key = serialization.load_ssh_public_key(public_key.strip().encode())
        raw = key.public_bytes(serialization.Encoding.OpenSSH,
                               serialization.PublicFormat.OpenSSH)
        blob = base64.b64decode(raw.split()[1])
    except (ValueError, IndexError, TypeError, UnicodeError):
        raise BadRequestError("Keypair data is invalid: failed to generate fingerprint") \
            from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def generate_keypair() -> tuple[str, str]:
    """Return a new RSA 2048 (private PEM, OpenSSH public) pair, as Nova generates."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"


class Keypairs:
    """``/os-keypairs`` and ``/os-keypairs/{name}`` (per user)."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _user(self, req: falcon.asgi.Request) -> str:
        ctx = auth(req)
        other = req.get_param("user_id")
        if other and other != ctx.user_id:
            if mv_of(req) < (2, 10) or not ctx.is_admin:
                raise ForbiddenError("Policy doesn't allow os_compute_api:os-keypairs to be "
                                     "performed.")
            return other
        return ctx.user_id

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the user's keypairs."""
        mv = mv_of(req)
        kps = self.svc.store.list_keypairs(self._user(req))
        kps = self.svc.page(req, kps, lambda k: k.name, "keypair") if mv >= (2, 35) else kps
        resp.media = {"keypairs": [{"keypair": keypair_view(k, mv, full=False)} for k in kps]}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Import a public key, or generate a pair (below 2.92) when none is given."""
        mv = mv_of(req)
        body = body_of(await read_json(req), "keypair")
        if not isinstance(body, dict):
            raise BadRequestError("Invalid input for field/attribute keypair.")
        name = body.get("name")
        pattern = _KEYPAIR_NAME_292 if mv >= (2, 92) else _KEYPAIR_NAME
        if not isinstance(name, str) or not 1 <= len(name) <= 255 or not pattern.match(name):
            raise BadRequestError("Invalid input for field/attribute name. Keypair name "
                                  "contains unsafe characters or is not 1-255 characters")
        kind = body.get("type", "ssh") if mv >= (2, 2) else "ssh"
        if kind not in ("ssh", "x509"):
            raise BadRequestError(f"Invalid input for field/attribute type. Value: {kind}.")
        user = self._user(req)
        if body.get("user_id") is not None and mv >= (2, 10):
            ctx = auth(req)
            if body["user_id"] != ctx.user_id and not ctx.is_admin:
                raise ForbiddenError("Policy doesn't allow os_compute_api:os-keypairs:create "
                                     "to be performed.")
            user = str(body["user_id"])
        public_key = body.get("public_key")
        private_key = None
        if public_key is None:
            if mv >= (2, 92):
                raise BadRequestError("Invalid input for field/attribute keypair. "
                                      "'public_key' is a required property")
            private_key, public_key = generate_keypair()
        if not isinstance(public_key, str) or kind == "x509":
            raise BadRequestError("Keypair data is invalid: failed to generate fingerprint")
        fp = fingerprint(public_key)
        if self.svc.store.count_keypairs(user) >= self.svc.limit_for(auth(req).project_id or "",
                                                                     "key_pairs"):
            raise QuotaExceededError("Quota exceeded, too many key pairs.")
        kp = self.svc.store.create_keypair(user, name, public_key.strip(), fp, kind)
        resp.status = 201 if mv >= (2, 2) else 200
        resp.media = {"keypair": keypair_view(kp, mv, full=True, private_key=private_key)}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         name: str) -> None:
        """Show a keypair."""
        kp = self.svc.store.get_keypair(self._user(req), name)
        if kp is None:
            raise NotFoundError(f"Keypair {name} not found for user {self._user(req)}")
        resp.media = {"keypair": keypair_show(kp, mv_of(req))}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            name: str) -> None:
        """Delete a keypair."""
        user = self._user(req)
        if not self.svc.store.delete_keypair(user, name):
            raise NotFoundError(f"Keypair {name} not found for user {user}")
        resp.status = 204 if mv_of(req) >= (2, 2) else 202
