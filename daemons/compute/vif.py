"""Guest network interfaces: the ports a build names, plugged into their network's bridge.

The compute API sends each port as ``{"port_id", "network_id", "mac_address",
"mtu"}``; the guest gets a virtio NIC with that MAC on the network's bridge
(``<interface type='bridge'>``, tap named after the port as Neutron does). The
bridge is made here when the network agent has not made it yet (os-vif's linux
bridge plug does the same), through :mod:`nubis.common.netdev`: address-less, no
host interface ever joins it. libvirt creates the tap when the domain starts and
removes it when the domain goes.
"""

from __future__ import annotations

import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nubis.common import netdev
from nubis.daemons.compute.errors import ComputeError

MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


class VifError(ComputeError):
    """A build request names its ports wrongly."""


@dataclass(frozen=True)
class Vif:
    """One guest NIC."""

    port_id: str
    network_id: str
    mac_address: str
    mtu: int = 1450

    @property
    def bridge(self) -> str:
        """Return the network's bridge."""
        return netdev.bridge_name(self.network_id)

    @property
    def tap(self) -> str:
        """Return the tap device name."""
        return netdev.tap_name(self.port_id)


def _uuid(value: Any, what: str) -> str:
    try:
        parsed = str(uuidlib.UUID(str(value)))
    except ValueError:
        raise VifError(f"vifs.{what}: must be a UUID") from None
    if parsed != value:
        raise VifError(f"vifs.{what}: must be a canonical UUID")
    return parsed


def parse_vifs(raw: Any) -> tuple[Vif, ...]:
    """Validate the ``vifs`` of a build request."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 16:
        raise VifError("vifs: must be a list of at most 16 ports")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise VifError("vifs: each port must be an object")
        mac = item.get("mac_address")
        if not isinstance(mac, str) or not MAC.match(mac):
            raise VifError("vifs.mac_address: must be a lower-case MAC address")
        mtu = item.get("mtu", 1450)
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
            raise VifError("vifs.mtu: must be 68..9000")
        out.append(Vif(_uuid(item.get("port_id"), "port_id"),
                       _uuid(item.get("network_id"), "network_id"), mac, mtu))
    return tuple(out)


def plug(vifs: Sequence[Vif]) -> None:
    """Make sure every NIC's bridge exists (the agent may not have built it yet)."""
    for vif in vifs:
        netdev.ensure_bridge(vif.network_id, vif.mtu)


def add_interfaces(devices: ET.Element, vifs: Sequence[Vif]) -> None:
    """Append one ``<interface type='bridge'>`` per NIC to a domain's ``<devices>``."""
    for vif in vifs:
        iface = ET.SubElement(devices, "interface", {"type": "bridge"})
        ET.SubElement(iface, "mac", {"address": vif.mac_address})
        ET.SubElement(iface, "source", {"bridge": vif.bridge})
        ET.SubElement(iface, "target", {"dev": vif.tap})
        ET.SubElement(iface, "model", {"type": "virtio"})
        ET.SubElement(iface, "mtu", {"size": str(vif.mtu)})
