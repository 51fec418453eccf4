"""The compute API's shared state and request helpers: store, peers, quotas, paging."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import falcon.asgi
from nubis.api.compute.clients import ComputeClient, ImageClient, SchedulerClient
from nubis.api.compute.config import ComputeApiConfig
from nubis.api.compute.model import Flavor
from nubis.api.compute.netclient import NetworkClient
from nubis.api.compute.store import ComputeStore
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.background import TaskSet
from nubis.api.shared.errors import BadRequestError, ForbiddenError, NotFoundError

LOG = logging.getLogger("nubis.api.compute")
T = TypeVar("T")
Version = tuple[int, int]

#: Quota resources Nova reports in ``os-quota-sets`` (from 2.57 without the
#: injected-file, floating-ip, fixed-ip, security-group ones).
QUOTA_RESOURCES = ("instances", "cores", "ram", "key_pairs", "metadata_items",
                   "server_groups", "server_group_members")
LEGACY_QUOTAS = {"injected_files": 5, "injected_file_content_bytes": 10240,
                 "injected_file_path_bytes": 255}
NETWORK_QUOTAS = {"floating_ips": -1, "fixed_ips": -1, "security_groups": -1,
                  "security_group_rules": -1}


def auth(req: falcon.asgi.Request) -> AuthContext:
    """Return the caller (the auth middleware has verified the token)."""
    ctx: AuthContext = req.context.auth
    return ctx


def project_of(req: falcon.asgi.Request) -> str:
    """Return the caller's project (compute needs a project-scoped token)."""
    ctx = auth(req)
    if not ctx.project_id:
        raise ForbiddenError("The compute API needs a project-scoped token.")
    return ctx.project_id


def mv_of(req: falcon.asgi.Request) -> Version:
    """Return the negotiated microversion."""
    mv: Version = req.context.mv
    return mv


def body_of(doc: Any, key: str) -> Any:
    """Return ``doc[key]`` of a JSON body, or a 400 naming the missing key."""
    if not isinstance(doc, dict) or key not in doc:
        raise BadRequestError(f"Invalid input for field/attribute {key}. "
                              f"'{key}' is a required property")
    return doc[key]


class ComputeService:
    """Everything the handlers share (one per ``nubis api`` process)."""

    def __init__(self, cfg: ComputeApiConfig, store: ComputeStore, root_url: str,
                 scheduler: SchedulerClient, images: ImageClient,
                 computes: ComputeClient, networks: NetworkClient | None = None) -> None:
        self.cfg = cfg
        self.store = store
        #: ``http://host:port/compute`` and the v2.1 base of links.
        self.root_url = root_url
        self.base_url = f"{root_url}/v2.1"
        self.scheduler = scheduler
        self.images = images
        self.computes = computes
        #: The network API (ports for servers); None when this cloud has none.
        self.networks = networks
        self.tasks = TaskSet(LOG)

    # --- background work ---------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` in the background (kept referenced; failures logged)."""
        self.tasks.spawn(coro, what)

    async def drain(self, timeout: float) -> None:
        """Wait for background work (tests and shutdown)."""
        await self.tasks.drain(timeout)

    # --- policy and lookups -------------------------------------------------------------

    def require_admin(self, req: falcon.asgi.Request, rule: str) -> None:
        """Raise Nova's policy 403 unless the caller is an admin."""
        if not auth(req).is_admin:
            raise ForbiddenError(f"Policy doesn't allow {rule} to be performed.")

    def flavor(self, req: falcon.asgi.Request, flavor_id: str) -> Flavor:
        """Return a flavor the caller may see, else 404."""
        flavor = self.store.get_flavor(flavor_id)
        ctx = auth(req)
        if flavor is not None and not flavor.is_public and not ctx.is_admin and (
                ctx.project_id not in self.store.flavor_access(flavor)):
            flavor = None
        if flavor is None:
            raise NotFoundError(f"Flavor {flavor_id} could not be found.")
        return flavor

    # --- quotas -------------------------------------------------------------------------

    def defaults(self) -> dict[str, int]:
        """Return the default quota of each resource."""
        return {r: int(getattr(self.cfg, r)) for r in QUOTA_RESOURCES}

    def limits(self, project_id: str) -> dict[str, int]:
        """Return a project's quotas (defaults overridden per project)."""
        return {**self.defaults(), **self.store.quotas(project_id)}

    def limit_for(self, project_id: str, resource: str) -> int:
        """Return one quota of a project (-1 means unlimited)."""
        limit = self.limits(project_id)[resource]
        return 2 ** 62 if limit < 0 else limit

    # --- query helpers ------------------------------------------------------------------

    @staticmethod
    def int_param(req: falcon.asgi.Request, name: str, default: int = 0,
                  minimum: int = 0) -> int:
        """Return a non-negative integer query parameter (400 if malformed)."""
        raw = req.get_param(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequestError(f"Invalid input for query parameters {name}. "
                                  f"Value: {raw}. '{raw}' is not an integer") from None
        if value < minimum:
            raise BadRequestError(f"Invalid input for query parameters {name}. "
                                  f"Value: {raw}. must be >= {minimum}")
        return value

    def page(self, req: falcon.asgi.Request, items: Sequence[T], key: Callable[[T], str],
             kind: str) -> list[T]:
        """Apply ``marker`` and ``limit`` (capped by ``max_limit``); 400 for a bad marker."""
        marker = req.get_param("marker")
        start = 0
        if marker:
            keys = [key(i) for i in items]
            if marker not in keys:
                raise BadRequestError(f"marker [{marker}] not found")
            start = keys.index(marker) + 1
        limit = self.int_param(req, "limit", self.cfg.max_limit)
        limit = min(limit, self.cfg.max_limit)
        req.context.page_full = len(items) - start > limit
        return list(items[start:start + limit])
