"""Where an admin asks a server to go: Nova's ``zone:host[:node]`` and 2.74's ``host``.

The API parses the request here; ``servers.Servers`` checks who may ask and whether
the host exists, and the build sends the hosts to the scheduler as ``requested_hosts``
(``force_hosts`` for the older, forced syntax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nubis.api.compute.errors import invalid_field
from nubis.api.compute.service import Version
from nubis.api.shared.errors import BadRequestError


@dataclass(frozen=True)
class Destination:
    """A host an admin asks for: ``zone:host[:node]`` (forced) or 2.74's ``host``."""

    host: str | None
    node: str | None
    #: From the ``availability_zone`` syntax (policy ``forced_host``), not 2.74's fields.
    forced: bool

    @property
    def mismatched(self) -> bool:
        """Return whether a host and a node were both named and differ.

        A nubis compute host is its own (only) node, so no host can be both.
        """
        return bool(self.host and self.node and self.host != self.node)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Return the host names the scheduler may pick (none: see :attr:`mismatched`)."""
        if self.mismatched:
            return ()
        return tuple(dict.fromkeys(n for n in (self.host, self.node) if n))


def zone_and_destination(body: dict[str, Any], mv: Version
                          ) -> tuple[str | None, Destination | None]:
    """Return the requested zone and host (Nova's ``zone:host:node`` and 2.74 fields)."""
    raw = body.get("availability_zone")
    if raw is not None and (not isinstance(raw, str) or not 1 <= len(raw) <= 255):
        raise invalid_field("availability_zone", "must be a string of 1-255 characters")
    az: str | None = raw
    dest = None
    if raw is not None and ":" in raw:
        zone, forced_host, forced_node = [*raw.split(":", 2), ""][:3]
        az = zone or None
        if forced_host or forced_node:
            dest = Destination(forced_host or None, forced_node or None, forced=True)
    host, node = body.get("host"), body.get("hypervisor_hostname")
    for field_name, value in (("host", host), ("hypervisor_hostname", node)):
        if value is None:
            continue
        if mv < (2, 74):
            raise invalid_field("server", f"Additional properties are not allowed "
                                 f"('{field_name}' was unexpected)")
        if not isinstance(value, str) or not 1 <= len(value) <= 255:
            raise invalid_field(field_name, "must be a string of 1-255 characters")
    if host is not None or node is not None:
        if dest is not None:
            raise BadRequestError("The availability_zone host and the host or "
                                  "hypervisor_hostname parameters cannot be combined.")
        dest = Destination(host, node, forced=False)
    return az, dest
