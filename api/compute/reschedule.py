"""Reschedule a failed build onto an alternate host, as Nova's conductor does.

``select_destinations`` answers each instance's chosen host and its alternates
(Nova's ``max_attempts`` - 1 next-best hosts that passed every filter). When the
build fails on the chosen host for a reason another host may not share (libvirt,
image download, an unreachable daemon — not a malformed request), the instance's
claim is moved to the first alternate that still fits: one Placement
``PUT /allocations/{instance}`` naming the alternate's provider, which releases
the old claim and makes the new one in one capacity-checked write. When no
alternate is left the build fails with the last host's error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nubis.api.compute.clients import PeerError
from nubis.api.compute.migrations import placement_call
from nubis.api.compute.model import Instance
from nubis.api.compute.service import ComputeService

LOG = logging.getLogger("nubis.api.compute")


@dataclass(frozen=True)
class Alternate:
    """A host the instance's claim was moved to."""

    host: str
    node: str


def retryable(exc: PeerError) -> bool:
    """Return True if a build failure may not repeat on another host (not a 4xx)."""
    return not 400 <= exc.status < 500


def _resources(selection: dict[str, Any]) -> dict[str, int] | None:
    allocs = ((selection.get("allocation_request") or {}).get("allocations") or {})
    for entry in allocs.values():
        if isinstance(entry, dict) and isinstance(entry.get("resources"), dict):
            return {str(k): int(v) for k, v in entry["resources"].items()}
    return None


async def claim_alternate(svc: ComputeService, inst: Instance, selection: dict[str, Any],
                          tried: set[str]) -> Alternate | None:
    """Move ``inst``'s claim to the first untried alternate that fits; None if none does.

    Every alternate looked at is added to ``tried``.
    """
    resources = _resources(selection)
    if resources is None:
        return None
    for alt in selection.get("alternates") or []:
        host, rp = str(alt.get("host") or ""), str(alt.get("compute_node_uuid") or "")
        if not host or not rp or host in tried:
            continue
        tried.add(host)
        try:
            status, doc = await placement_call(svc.scheduler, "PUT", inst.uuid, {
                "allocations": {rp: {"resources": resources}},
                "project_id": inst.project_id, "user_id": inst.user_id})
        except PeerError as exc:
            LOG.warning("could not claim alternate %s for %s: %s", host, inst.uuid, exc)
            return None
        if status == 204:
            LOG.info("rescheduling %s onto alternate host %s", inst.uuid, host)
            return Alternate(host, str(alt.get("nodename") or host))
        LOG.info("alternate %s cannot take %s: %s %s", host, inst.uuid, status, doc)
    return None
