"""Ports for servers: the compute API's client of the network API (Nova's neutron glue).

``networks`` of a create request is ``"none"``, ``"auto"`` (the project's one network,
as Nova's "get me a network" finds it) or a list of ``{"uuid"[, "fixed_ip"]}`` /
``{"port"}``. Ports are created (or claimed) with the caller's token before the
instances are recorded, ``device_id`` = the instance id, so a refused request leaves
no port behind; deleting a server deletes the ports it created. Addresses for the
server views are read back from the ports and their floating IPs (``floating``).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nubis.api.compute.clients import PeerError, call
from nubis.api.compute.errors import QuotaExceededError
from nubis.api.shared.errors import ApiError, BadRequestError, ConflictError
from nubis.common.httpclient import HTTPClient

#: ``device_owner`` of the ports the compute API makes (deleted with the server) and of
#: ports it claims from the caller (only unbound when the server goes, as Nova's
#: ``preserve_on_delete``).
OWNER = "compute:nova"
CLAIMED_OWNER = "compute:nova-preserve"
NetworkRequest = str | list[dict[str, str]]


@dataclass(frozen=True)
class VifInfo:
    """A port as the compute daemon needs it."""

    port_id: str
    network_id: str
    mac_address: str
    mtu: int
    #: Whether the compute API made the port (and deletes it with the server).
    created: bool

    def as_dict(self) -> dict[str, Any]:
        """Render for the build request."""
        return {"port_id": self.port_id, "network_id": self.network_id,
                "mac_address": self.mac_address, "mtu": self.mtu}


def parse_networks(raw: Any) -> NetworkRequest:
    """Validate the list form of ``networks`` (``auto``/``none`` are checked by the caller)."""
    if isinstance(raw, str):
        return raw
    out = []
    for item in raw:
        keys = set(item) - {"tag"}
        if not keys or keys - {"uuid", "port", "fixed_ip"} or (
                "port" in keys and len(keys) > 1):
            raise BadRequestError(f"Invalid input for field/attribute networks. Value: "
                                  f"{item!r}. Additional properties are not allowed")
        if not all(isinstance(item[k], str) for k in keys):
            raise BadRequestError("Invalid input for field/attribute networks.")
        out.append({k: item[k] for k in keys})
    if len(out) > 16:
        raise BadRequestError("Too many networks requested (at most 16).")
    return out


class NetworkClient:
    """The network API, called with the caller's token."""

    def __init__(self, http: HTTPClient, url: str) -> None:
        self.http = http
        #: ``http://host:port/network``.
        self.url = url

    async def _call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        try:
            status, raw = await call(self.http, self.url, method, f"/v2.0{path}",
                                     {"X-Auth-Token": token}, body)
        except PeerError as exc:
            raise ApiError(f"The network service is unavailable: {exc}") from None
        if status >= 400:
            raise _nova_error(status, raw)
        return json.loads(raw) if raw else None

    async def _networks(self, token: str) -> list[dict[str, Any]]:
        nets: list[dict[str, Any]] = (await self._call("GET", "/networks", token))["networks"]
        return nets

    async def auto_network(self, token: str, project_id: str) -> dict[str, Any]:
        """Return the project's one usable network (Nova's ``auto`` allocation)."""
        nets = [n for n in await self._networks(token) if not n.get("router:external")
                and n.get("subnets")]
        own = [n for n in nets if n["project_id"] == project_id] or [
            n for n in nets if n.get("shared")]
        if not own:
            raise BadRequestError(f"Unable to automatically allocate a network for project "
                                  f"{project_id}")
        if len(own) > 1:
            raise ConflictError("Multiple possible networks found, use a Network ID to be "
                                "more specific.")
        return own[0]

    async def allocate(self, uuids: Sequence[str], request: NetworkRequest, token: str,
                       project_id: str) -> dict[str, list[VifInfo]]:
        """Create or claim the ports of each instance; on any failure undo and raise."""
        out: dict[str, list[VifInfo]] = {u: [] for u in uuids}
        if request == "none" or request == []:
            return out
        wanted: list[dict[str, str]]
        if isinstance(request, str):
            wanted = [{"uuid": (await self.auto_network(token, project_id))["id"]}]
        else:
            wanted = list(request)
        try:
            for uuid in uuids:
                for item in wanted:
                    out[uuid].append(await self._one(uuid, item, token))
        except ApiError:
            await self.release_vifs([v for vs in out.values() for v in vs], token)
            raise
        return out

    async def _one(self, uuid: str, item: dict[str, str], token: str) -> VifInfo:
        if "port" in item:
            port = (await self._call("GET", f"/ports/{_q(item['port'])}", token))["port"]
            if port.get("device_id"):
                raise ConflictError(f"Port {port['id']} is still in use.")
            port = (await self._call("PUT", f"/ports/{_q(port['id'])}", token, {"port": {
                "device_id": uuid, "device_owner": CLAIMED_OWNER}}))["port"]
            created = False
        else:
            body: dict[str, Any] = {"network_id": item["uuid"], "device_id": uuid,
                                    "device_owner": OWNER}
            if "fixed_ip" in item:
                body["fixed_ips"] = [{"ip_address": item["fixed_ip"]}]
            port = (await self._call("POST", "/ports", token, {"port": body}))["port"]
            created = True
        net = (await self._call("GET", f"/networks/{_q(port['network_id'])}", token))["network"]
        return VifInfo(port["id"], port["network_id"], port["mac_address"],
                       int(net.get("mtu") or 1450), created)

    async def release_vifs(self, vifs: Sequence[VifInfo], token: str) -> None:
        """Undo a failed request's ports: delete the made ones, unbind the claimed ones."""
        for vif in vifs:
            with contextlib.suppress(ApiError):
                if vif.created:
                    await self._call("DELETE", f"/ports/{_q(vif.port_id)}", token)
                else:
                    await self._call("PUT", f"/ports/{_q(vif.port_id)}", token, {"port": {
                        "device_id": "", "device_owner": ""}})

    async def ports_of(self, uuids: Sequence[str], token: str) -> list[dict[str, Any]]:
        """Return the ports whose ``device_id`` is one of ``uuids``."""
        if not uuids:
            return []
        query = urllib.parse.urlencode([("device_id", u) for u in uuids])
        ports: list[dict[str, Any]] = (await self._call("GET", f"/ports?{query}",
                                                         token))["ports"]
        return ports

    async def release(self, uuid: str, token: str) -> int:
        """Delete the ports a server's build made; unbind the ones it claimed."""
        count = 0
        for port in await self.ports_of([uuid], token):
            if port["device_owner"] == OWNER:
                await self._call("DELETE", f"/ports/{_q(port['id'])}", token)
                count += 1
            elif port["device_owner"] == CLAIMED_OWNER:
                await self._call("PUT", f"/ports/{_q(port['id'])}", token, {"port": {
                    "device_id": "", "device_owner": ""}})
        return count

    async def addresses(self, uuids: Sequence[str], token: str
                        ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Return Nova's ``addresses`` (network name -> addresses) per instance."""
        try:
            ports = await self.ports_of(list(uuids), token)
            names = {n["id"]: n["name"] or n["id"] for n in await self._networks(token)}
            floating = await self._floating_of([p["id"] for p in ports], token)
        except ApiError:
            return {}
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for port in ports:
            net = names.get(port["network_id"], port["network_id"])
            for ip in port["fixed_ips"]:
                out.setdefault(port["device_id"], {}).setdefault(net, []).append({
                    "version": 4, "addr": ip["ip_address"], "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
            for fip in floating.get(port["id"], []):
                out.setdefault(port["device_id"], {}).setdefault(net, []).append({
                    "version": 4, "addr": fip, "OS-EXT-IPS:type": "floating",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        return out

    async def _floating_of(self, port_ids: Sequence[str], token: str) -> dict[str, list[str]]:
        """Return the floating addresses associated with each of ``port_ids``."""
        if not port_ids:
            return {}
        query = urllib.parse.urlencode([("port_id", p) for p in port_ids])
        out: dict[str, list[str]] = {}
        for fip in (await self._call("GET", f"/floatingips?{query}", token))["floatingips"]:
            out.setdefault(fip["port_id"], []).append(fip["floating_ip_address"])
        return out


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _nova_error(status: int, raw: bytes) -> ApiError:
    """Map a network API refusal to the error Nova answers with."""
    try:
        err = json.loads(raw)["NeutronError"]
        kind, message = str(err.get("type", "")), str(err.get("message", ""))
    except (ValueError, KeyError, TypeError):
        kind, message = "", raw[:200].decode(errors="replace")
    if status == 404 and kind == "NetworkNotFound":
        return BadRequestError(message)
    if status == 404 and kind == "PortNotFound":
        return BadRequestError(message)
    if status == 409 and kind in ("IpAddressGenerationFailure", "IpAddressAlreadyAllocated",
                                  "MacAddressInUse"):
        return ConflictError(message)
    if status in (400, 404):
        return BadRequestError(message)
    if status == 409 and kind == "OverQuota":
        return QuotaExceededError(f"Maximum number of ports exceeded: {message}")
    if status == 409:
        return ConflictError(message)
    return ApiError(f"The network service refused the request: {status} {message}")
