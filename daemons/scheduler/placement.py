"""A Placement-compatible REST subset (Falcon ASGI), served by ``nubis scheduler``.

Routes live under a prefix (``/placement``): resource providers, inventories,
usages, traits, provider aggregates, allocations, allocation candidates,
resource classes. Microversions come in ``OpenStack-API-Version: placement 1.x``
(1.0-1.39; shapes switch where Placement's do: provider bodies on POST from 1.20,
dict-form allocations from 1.12, consumer generations from 1.28). Every write
goes through :class:`SchedulerService`, so the scheduler's host matrix follows it.
Errors use Placement's ``{"errors": [{"status", "code", "title", "detail"}]}``.
"""

from __future__ import annotations

import asyncio
import re
import uuid as uuidlib
from collections.abc import Callable
from typing import Any, TypeVar

import falcon
import falcon.asgi
import numpy as np
from nubis.api.shared.rest import MicroversionMiddleware, read_json
from nubis.daemons.scheduler.errors import BadRequest, NotFound
from nubis.daemons.scheduler.hoststate import Inventory
from nubis.daemons.scheduler.service import SchedulerService, parse_inventory
from nubis.daemons.scheduler.store import ConsumerAllocations, Provider
from sqlalchemy.engine import Connection

T = TypeVar("T")
#: Placement microversions served: 1.0 up to 1.39.
MIN_VERSION = (1, 0)
MAX_VERSION = (1, 39)
_RESOURCES_RE = re.compile(r"^([A-Z0-9_]+):(\d+)$")


def microversions(prefix: str) -> MicroversionMiddleware:
    """Return the middleware negotiating placement microversions under ``prefix``."""
    return MicroversionMiddleware("placement", prefix, MIN_VERSION, MAX_VERSION)


def _uuid(value: Any, what: str) -> str:
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError:
        raise BadRequest(f"Invalid {what}: {value!r} is not a uuid") from None


class Base:
    """Shared helpers of every placement resource."""

    def __init__(self, svc: SchedulerService, prefix: str) -> None:
        self.svc = svc
        self.prefix = prefix

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run a read in a worker thread."""
        def run() -> T:
            with self.svc.db.connect() as conn:
                return fn(conn)
        return await asyncio.to_thread(run)

    async def mutate(self, fn: Callable[[Connection], T], touched: list[str]) -> T:
        """Run a write (and matrix update) in a worker thread."""
        return await asyncio.to_thread(self.svc.mutate, fn, touched)

    def provider_json(self, p: Provider) -> dict[str, Any]:
        """Return a provider's JSON representation."""
        base = f"{self.prefix}/resource_providers/{p.uuid}"
        return {"uuid": p.uuid, "name": p.name, "generation": p.generation,
                "parent_provider_uuid": p.parent_uuid,
                "root_provider_uuid": p.root_uuid or p.uuid,
                "links": [{"rel": "self", "href": base},
                          {"rel": "inventories", "href": f"{base}/inventories"},
                          {"rel": "usages", "href": f"{base}/usages"},
                          {"rel": "aggregates", "href": f"{base}/aggregates"},
                          {"rel": "traits", "href": f"{base}/traits"},
                          {"rel": "allocations", "href": f"{base}/allocations"}]}


class Root(Base):
    """Version discovery (no authentication)."""

    auth_required = False

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the one API version."""
        resp.media = {"versions": [{
            "id": "v1.0", "min_version": "1.0", "max_version": "1.39", "status": "CURRENT",
            "links": [{"rel": "self", "href": ""}]}]}


class Providers(Base):
    """``/resource_providers``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List providers, optionally by name, uuid, resources or required traits."""
        name = req.get_param("name")
        uuid = req.get_param("uuid")
        resources = parse_resources(req.get_param("resources"))
        required, forbidden = parse_required(req.get_param("required"))

        def fn(conn: Connection) -> list[Provider]:
            provs = self.svc.store.list_providers(conn)
            if name is not None:
                provs = [p for p in provs if p.name == name]
            if uuid is not None:
                provs = [p for p in provs if p.uuid == uuid]
            if resources or required or forbidden:
                ok = set(self.svc_candidates(resources, required, forbidden))
                provs = [p for p in provs if p.uuid in ok]
            return provs
        provs = await self.read(fn)
        resp.media = {"resource_providers": [self.provider_json(p) for p in provs]}

    def svc_candidates(self, resources: dict[str, int], required: frozenset[str],
                       forbidden: frozenset[str]) -> list[str]:
        """Return uuids of root providers with room for ``resources`` and the traits."""
        return candidate_rows(self.svc, resources, required, forbidden)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a provider."""
        data = await read_json(req)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not (
                0 < len(data["name"]) <= 200):
            raise BadRequest("'name' is a required string of 1-200 characters")
        uuid = _uuid(data["uuid"], "uuid") if data.get("uuid") else str(uuidlib.uuid4())
        parent = data.get("parent_provider_uuid")
        parent = _uuid(parent, "parent_provider_uuid") if parent else None
        prov = await self.mutate(
            lambda conn: self.svc.store.create_provider(conn, uuid, data["name"], parent),
            [uuid])
        resp.set_header("Location", f"{self.prefix}/resource_providers/{uuid}")
        if req.context.mv >= (1, 20):
            resp.status = 200
            resp.media = self.provider_json(prov)
        else:
            resp.status = 201


class Provider1(Base):
    """``/resource_providers/{uuid}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Show a provider."""
        prov = await self.read(lambda conn: self.svc.store.get_provider(conn, uuid))
        resp.media = self.provider_json(prov)

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Rename a provider."""
        data = await read_json(req)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not (
                0 < len(data["name"]) <= 200):
            raise BadRequest("'name' is a required string of 1-200 characters")
        prov = await self.mutate(
            lambda conn: self.svc.store.update_provider(conn, uuid, data["name"]), [])
        self.svc.provider_renamed(uuid, prov.name)
        await asyncio.to_thread(self.svc.resync, [uuid])
        resp.media = self.provider_json(prov)

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        uuid: str) -> None:
        """Delete a provider without allocations."""
        await self.mutate(lambda conn: self.svc.store.delete_provider(conn, uuid), [])
        self.svc.provider_deleted(uuid)
        resp.status = 204


class Inventories(Base):
    """``/resource_providers/{uuid}/inventories``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Show all inventories of a provider."""
        def fn(conn: Connection) -> tuple[Provider, dict[str, Inventory]]:
            prov = self.svc.store.get_provider(conn, uuid)
            return prov, self.svc.store.get_inventories(conn, prov.id)
        prov, invs = await self.read(fn)
        resp.media = {"inventories": {rc: inv.as_dict() for rc, inv in invs.items()},
                      "resource_provider_generation": prov.generation}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Replace all inventories (generation checked)."""
        data = await read_json(req)
        if not isinstance(data, dict) or not isinstance(data.get("inventories"), dict):
            raise BadRequest("'inventories' is a required object")
        invs = {rc: parse_inventory(rc, v) for rc, v in data["inventories"].items()}

        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            self.svc.store.check_generation(prov, data.get("resource_provider_generation"))
            return self.svc.store.set_inventories(conn, prov, invs)
        gen = await self.mutate(fn, [uuid])
        resp.media = {"inventories": {rc: inv.as_dict() for rc, inv in invs.items()},
                      "resource_provider_generation": gen}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        uuid: str) -> None:
        """Delete all inventories (fails while allocations exist)."""
        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            return self.svc.store.set_inventories(conn, prov, {})
        await self.mutate(fn, [uuid])
        resp.status = 204


class Inventory1(Base):
    """``/resource_providers/{uuid}/inventories/{rc}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str, rc: str) -> None:
        """Show one inventory."""
        def fn(conn: Connection) -> tuple[Provider, dict[str, Inventory]]:
            prov = self.svc.store.get_provider(conn, uuid)
            return prov, self.svc.store.get_inventories(conn, prov.id)
        prov, invs = await self.read(fn)
        if rc not in invs:
            raise NotFound(f"No inventory of class {rc} for {uuid}")
        resp.media = {**invs[rc].as_dict(), "resource_provider_generation": prov.generation}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str, rc: str) -> None:
        """Create or replace one inventory (generation checked)."""
        data = await read_json(req)
        if not isinstance(data, dict):
            raise BadRequest("JSON object required")
        gen_seen = data.get("resource_provider_generation")
        inv = parse_inventory(rc, {k: v for k, v in data.items()
                                   if k != "resource_provider_generation"})

        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            self.svc.store.check_generation(prov, gen_seen)
            invs = self.svc.store.get_inventories(conn, prov.id)
            invs[rc] = inv
            return self.svc.store.set_inventories(conn, prov, invs)
        gen = await self.mutate(fn, [uuid])
        resp.media = {**inv.as_dict(), "resource_provider_generation": gen}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        uuid: str, rc: str) -> None:
        """Delete one inventory."""
        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            invs = self.svc.store.get_inventories(conn, prov.id)
            if invs.pop(rc, None) is None:
                raise NotFound(f"No inventory of class {rc} found for delete")
            return self.svc.store.set_inventories(conn, prov, invs)
        await self.mutate(fn, [uuid])
        resp.status = 204


class Usages(Base):
    """``/resource_providers/{uuid}/usages``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Show a provider's usage per resource class."""
        def fn(conn: Connection) -> tuple[Provider, dict[str, int], dict[str, Inventory]]:
            prov = self.svc.store.get_provider(conn, uuid)
            return (prov, self.svc.store.usages(conn, [prov.id]).get(prov.id, {}),
                    self.svc.store.get_inventories(conn, prov.id))
        prov, used, invs = await self.read(fn)
        resp.media = {"usages": {rc: used.get(rc, 0) for rc in sorted(set(invs) | set(used))},
                      "resource_provider_generation": prov.generation}


class ProjectUsages(Base):
    """``/usages?project_id=``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Show a project's (or user's) summed usage."""
        project = req.get_param("project_id")
        if not project:
            raise BadRequest("'project_id' is a required query parameter")
        user = req.get_param("user_id")
        resp.media = {"usages": await self.read(
            lambda conn: self.svc.store.project_usages(conn, project, user))}


class ProviderTraits(Base):
    """``/resource_providers/{uuid}/traits``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """List a provider's traits."""
        def fn(conn: Connection) -> tuple[Provider, list[str]]:
            prov = self.svc.store.get_provider(conn, uuid)
            return prov, self.svc.store.provider_traits(conn, prov.id)
        prov, names = await self.read(fn)
        resp.media = {"traits": names, "resource_provider_generation": prov.generation}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Replace a provider's traits (generation checked)."""
        data = await read_json(req)
        if not isinstance(data, dict) or not isinstance(data.get("traits"), list) or not all(
                isinstance(t, str) for t in data["traits"]):
            raise BadRequest("'traits' is a required list of strings")

        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            self.svc.store.check_generation(prov, data.get("resource_provider_generation"))
            return self.svc.store.set_provider_traits(conn, prov, data["traits"])
        gen = await self.mutate(fn, [uuid])
        resp.media = {"traits": sorted(set(data["traits"])),
                      "resource_provider_generation": gen}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        uuid: str) -> None:
        """Remove every trait of a provider."""
        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            return self.svc.store.set_provider_traits(conn, prov, [])
        await self.mutate(fn, [uuid])
        resp.status = 204


class ProviderAggregates(Base):
    """``/resource_providers/{uuid}/aggregates``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """List a provider's aggregate uuids."""
        def fn(conn: Connection) -> tuple[Provider, list[str]]:
            prov = self.svc.store.get_provider(conn, uuid)
            return prov, self.svc.store.provider_aggregates(conn, prov.id)
        prov, aggs = await self.read(fn)
        out: dict[str, Any] = {"aggregates": aggs}
        if req.context.mv >= (1, 19):
            out["resource_provider_generation"] = prov.generation
        resp.media = out

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """Replace a provider's aggregates (generation checked from 1.19)."""
        data = await read_json(req)
        new_style = req.context.mv >= (1, 19)
        aggs = data.get("aggregates") if new_style and isinstance(data, dict) else data
        if not isinstance(aggs, list):
            raise BadRequest("aggregates must be a list of uuids")
        aggs = [_uuid(a, "aggregate") for a in aggs]

        def fn(conn: Connection) -> int:
            prov = self.svc.store.get_provider(conn, uuid)
            if new_style:
                self.svc.store.check_generation(prov, data.get("resource_provider_generation"))
            return self.svc.store.set_provider_aggregates(conn, prov, aggs)
        gen = await self.mutate(fn, [uuid])
        out: dict[str, Any] = {"aggregates": sorted(set(aggs))}
        if new_style:
            out["resource_provider_generation"] = gen
        resp.media = out


class ProviderAllocations(Base):
    """``/resource_providers/{uuid}/allocations``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     uuid: str) -> None:
        """List the allocations against a provider by consumer."""
        def fn(conn: Connection) -> tuple[Provider, dict[str, dict[str, int]]]:
            prov = self.svc.store.get_provider(conn, uuid)
            return prov, self.svc.store.provider_allocations(conn, prov.id)
        prov, allocs = await self.read(fn)
        resp.media = {"allocations": {c: {"resources": r} for c, r in allocs.items()},
                      "resource_provider_generation": prov.generation}


class Allocations(Base):
    """``/allocations/{consumer}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     consumer: str) -> None:
        """Show a consumer's allocations."""
        def fn(conn: Connection) -> tuple[dict[str, dict[str, int]], Any, dict[str, int]]:
            allocs = self.svc.store.consumer_allocations(conn, [consumer]).get(consumer, {})
            gens = {p.uuid: p.generation for p in self.svc.store.list_providers(conn)
                    if p.uuid in allocs}
            return allocs, self.svc.store.get_consumer(conn, consumer), gens
        allocs, row, gens = await self.read(fn)
        out: dict[str, Any] = {"allocations": {
            rp: {"generation": gens.get(rp), "resources": res} for rp, res in allocs.items()}}
        if row is not None and req.context.mv >= (1, 12):
            out["project_id"] = row.project_id
            out["user_id"] = row.user_id
        if row is not None and req.context.mv >= (1, 28):
            out["consumer_generation"] = row.generation
        resp.media = out

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     consumer: str) -> None:
        """Replace a consumer's allocations (capacity and generations checked)."""
        _uuid(consumer, "consumer uuid")
        item = parse_allocation_body(await read_json(req), consumer, req.context.mv)
        await asyncio.to_thread(self._put, item)
        resp.status = 204

    def _put(self, item: ConsumerAllocations) -> None:
        with self.svc.lock:
            changes, gens = self.svc.write(
                lambda conn: self.svc.store.replace_allocations(conn, [item]))
            self.svc.apply_changes(changes, gens)

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        consumer: str) -> None:
        """Delete a consumer's allocations."""
        if not await asyncio.to_thread(self.svc.release, consumer):
            raise NotFound(f"No allocations for consumer '{consumer}'")
        resp.status = 204


def parse_allocation_body(data: Any, consumer: str, mv: tuple[int, int]) -> ConsumerAllocations:
    """Validate a PUT /allocations body (list form before 1.12, dict form after)."""
    if not isinstance(data, dict) or "allocations" not in data:
        raise BadRequest("'allocations' is a required property")
    raw = data["allocations"]
    allocs: dict[str, dict[str, int]] = {}
    if mv < (1, 12):
        if not isinstance(raw, list) or not raw:
            raise BadRequest("allocations must be a non-empty list")
        for entry in raw:
            rp = entry.get("resource_provider", {}).get("uuid") if isinstance(
                entry, dict) and isinstance(entry.get("resource_provider"), dict) else None
            if rp is None or not isinstance(entry.get("resources"), dict):
                raise BadRequest("each allocation needs resource_provider.uuid and resources")
            allocs[_uuid(rp, "resource provider")] = entry["resources"]
    else:
        if not isinstance(raw, dict) or (not raw and mv < (1, 28)):
            raise BadRequest("allocations must be a non-empty object")
        for rp, entry in raw.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("resources"), dict):
                raise BadRequest("each allocation needs a 'resources' object")
            allocs[_uuid(rp, "resource provider")] = entry["resources"]
    for res in allocs.values():
        for rc, amount in res.items():
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
                raise BadRequest(f"{rc}: allocation amounts must be integers >= 1")
    generation: int | None = -1
    if mv >= (1, 28):
        if "consumer_generation" not in data:
            raise BadRequest("'consumer_generation' is a required property")
        generation = data["consumer_generation"]
        if generation is not None and not isinstance(generation, int):
            raise BadRequest("consumer_generation must be an integer or null")
    project = data.get("project_id", "")
    user = data.get("user_id", "")
    if mv >= (1, 8) and (not project or not user):
        raise BadRequest("'project_id' and 'user_id' are required properties")
    return ConsumerAllocations(consumer, str(project), str(user), allocs, generation)


def parse_resources(raw: str | None) -> dict[str, int]:
    """Parse ``VCPU:1,MEMORY_MB:512``."""
    if raw is None:
        return {}
    out: dict[str, int] = {}
    for part in raw.split(","):
        m = _RESOURCES_RE.match(part.strip())
        if m is None:
            raise BadRequest(f"Badly formed resources parameter. Expected resources query "
                             f"string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. "
                             f"Got: {raw}.")
        if int(m.group(2)) < 1:
            raise BadRequest(f"Invalid amount for {m.group(1)}: must be >= 1")
        out[m.group(1)] = int(m.group(2))
    return out


def parse_required(raw: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """Parse ``HW_CPU_X86_AVX,!CUSTOM_SLOW`` into (required, forbidden)."""
    if not raw:
        return frozenset(), frozenset()
    req, forb = set(), set()
    for part in raw.split(","):
        name = part.strip()
        if name.startswith("!"):
            forb.add(name[1:])
        elif name:
            req.add(name)
    if not all(re.match(r"^[A-Z0-9_]+$", n) for n in req | forb):
        raise BadRequest(f"Invalid query string parameters: required={raw}")
    return frozenset(req), frozenset(forb)


def candidate_rows(svc: SchedulerService, resources: dict[str, int],
                   required: frozenset[str], forbidden: frozenset[str]) -> list[str]:
    """Return the root provider uuids that fit ``resources`` and the trait constraints."""
    with svc.lock:
        st = svc.state
        mask = ~st.retired[: st.n]
        for rc, amount in resources.items():
            cols = st.resources.get(rc)
            if cols is None:
                return []
            mask &= cols.fits(amount, st.n)
        if required:
            mask &= st.traits.map(lambda t: required <= t, st.n)
        if forbidden:
            mask &= st.traits.map(lambda t: not (forbidden & t), st.n)
        return [st.uuids[r] for r in np.flatnonzero(mask)]


class AllocationCandidates(Base):
    """``/allocation_candidates?resources=...&required=...&limit=``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return allocation requests and provider summaries for single-provider fits."""
        resources = parse_resources(req.get_param("resources"))
        if not resources:
            raise BadRequest("'resources' is a required query parameter")
        required, forbidden = parse_required(req.get_param("required"))
        limit = req.get_param_as_int("limit", min_value=1)
        uuids = candidate_rows(self.svc, resources, required, forbidden)
        if limit:
            uuids = uuids[:limit]
        mv = req.context.mv
        resp.media = {"allocation_requests": [self._request(u, resources, mv) for u in uuids],
                      "provider_summaries": await self.read(
                          lambda conn: self._summaries(conn, uuids, mv))}

    @staticmethod
    def _request(uuid: str, resources: dict[str, int], mv: tuple[int, int]) -> dict[str, Any]:
        if mv >= (1, 12):
            return {"allocations": {uuid: {"resources": dict(resources)}}}
        return {"allocations": [{"resource_provider": {"uuid": uuid},
                                 "resources": dict(resources)}]}

    def _summaries(self, conn: Connection, uuids: list[str],
                   mv: tuple[int, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for uuid in uuids:
            prov = self.svc.store.get_provider(conn, uuid)
            invs = self.svc.store.get_inventories(conn, prov.id)
            used = self.svc.store.usages(conn, [prov.id]).get(prov.id, {})
            summary: dict[str, Any] = {"resources": {
                rc: {"capacity": inv.capacity, "used": used.get(rc, 0)}
                for rc, inv in invs.items()}}
            if mv >= (1, 17):
                summary["traits"] = self.svc.store.provider_traits(conn, prov.id)
            if mv >= (1, 29):
                summary["parent_provider_uuid"] = prov.parent_uuid
                summary["root_provider_uuid"] = prov.root_uuid or prov.uuid
            out[uuid] = summary
        return out


class Traits(Base):
    """``/traits``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List traits (``name=startswith:X`` or ``name=in:A,B``)."""
        names = await self.read(self.svc.store.list_traits)
        flt = req.get_param("name")
        if flt:
            if flt.startswith("startswith:"):
                names = [n for n in names if n.startswith(flt[11:])]
            elif flt.startswith("in:"):
                wanted = set(flt[3:].split(","))
                names = [n for n in names if n in wanted]
            else:
                raise BadRequest(f"Badly formed name parameter: {flt}")
        resp.media = {"traits": names}


class Trait1(Base):
    """``/traits/{name}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     name: str) -> None:
        """204 if the trait exists."""
        if name not in await self.read(self.svc.store.list_traits):
            raise NotFound(f"No such trait(s): {name}")
        resp.status = 204

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     name: str) -> None:
        """Create a custom trait (201) or confirm it (204)."""
        if not name.startswith("CUSTOM_"):
            raise BadRequest("The trait is invalid. A valid trait must include prefix "
                             "'CUSTOM_'.")
        created = await self.mutate(
            lambda conn: self.svc.store.ensure_traits(conn, [name], allow_standard=False), [])
        resp.status = 201 if created else 204
        resp.set_header("Location", f"{self.prefix}/traits/{name}")


class ResourceClasses(Base):
    """``/resource_classes`` and ``/resource_classes/{name}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List resource classes."""
        names = await self.read(self.svc.store.list_resource_classes)
        resp.media = {"resource_classes": [
            {"name": n, "links": [{"rel": "self", "href":
                                   f"{self.prefix}/resource_classes/{n}"}]} for n in names]}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         name: str) -> None:
        """Show one resource class."""
        if not await self.read(lambda conn: self.svc.store.resource_class_exists(conn, name)):
            raise NotFound(f"No such resource class {name}.")
        resp.media = {"name": name, "links": [
            {"rel": "self", "href": f"{self.prefix}/resource_classes/{name}"}]}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         name: str) -> None:
        """Create a custom resource class (201) or confirm it (204)."""
        created = await self.mutate(
            lambda conn: self.svc.store.ensure_resource_class(conn, name), [])
        resp.status = 201 if created else 204
        resp.set_header("Location", f"{self.prefix}/resource_classes/{name}")


def add_routes(app: falcon.asgi.App[Any, Any], svc: SchedulerService,
               prefix: str = "/placement") -> None:
    """Mount the placement API on ``app`` under ``prefix``."""
    rp = f"{prefix}/resource_providers/{{uuid}}"
    app.add_route(f"{prefix}/", Root(svc, prefix))
    app.add_route(prefix, Root(svc, prefix))
    app.add_route(f"{prefix}/resource_providers", Providers(svc, prefix))
    app.add_route(rp, Provider1(svc, prefix))
    app.add_route(f"{rp}/inventories", Inventories(svc, prefix))
    app.add_route(f"{rp}/inventories/{{rc}}", Inventory1(svc, prefix))
    app.add_route(f"{rp}/usages", Usages(svc, prefix))
    app.add_route(f"{rp}/traits", ProviderTraits(svc, prefix))
    app.add_route(f"{rp}/aggregates", ProviderAggregates(svc, prefix))
    app.add_route(f"{rp}/allocations", ProviderAllocations(svc, prefix))
    app.add_route(f"{prefix}/allocations/{{consumer}}", Allocations(svc, prefix))
    app.add_route(f"{prefix}/allocation_candidates", AllocationCandidates(svc, prefix))
    app.add_route(f"{prefix}/usages", ProjectUsages(svc, prefix))
    app.add_route(f"{prefix}/traits", Traits(svc, prefix))
    app.add_route(f"{prefix}/traits/{{name}}", Trait1(svc, prefix))
    classes = ResourceClasses(svc, prefix)
    app.add_route(f"{prefix}/resource_classes", classes)
    app.add_route(f"{prefix}/resource_classes/{{name}}", classes, suffix="one")

