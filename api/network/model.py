"""Typed records of the network service and their Neutron JSON views."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nubis.api.network.ipam import Pool, parse_ip


def stamp(value: datetime) -> str:
    """Render a timestamp as Neutron does (``2026-01-01T00:00:00Z``)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def common_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return the attributes every Neutron resource view starts with."""
    return {"id": row["id"], "project_id": row["project_id"], "tenant_id": row["project_id"],
            "description": row["description"], "tags": [],
            "created_at": stamp(row["created_at"]), "updated_at": stamp(row["updated_at"]),
            "revision_number": row["revision_number"]}


@dataclass(frozen=True)
class Record:
    """A database row behind a Neutron resource (``id`` and ``project_id`` columns)."""

    row: Mapping[str, Any]

    @property
    def id(self) -> str:
        """Return the id."""
        return str(self.row["id"])

    @property
    def project_id(self) -> str:
        """Return the project id."""
        return str(self.row["project_id"])


@dataclass(frozen=True)
class Network(Record):
    """A network row with its subnet ids."""

    subnets: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        """Return the shared."""
        return bool(self.row["shared"])

    @property
    def external(self) -> bool:
        """Return the external."""
        return bool(self.row["external"])

    def view(self, admin: bool) -> dict[str, Any]:
        """Render Neutron's network (provider attributes for admins only)."""
        r = self.row
        out = {**common_view(r), "name": r["name"], "admin_state_up": r["admin_state_up"],
               "status": "ACTIVE", "subnets": list(self.subnets), "shared": r["shared"],
               "router:external": r["external"], "mtu": r["mtu"],
               "port_security_enabled": r["port_security_enabled"],
               "availability_zone_hints": [], "availability_zones": ["nova"],
               "ipv4_address_scope": None, "ipv6_address_scope": None, "is_default": False,
               "l2_adjacency": True}
        if admin:
            out.update({"provider:network_type": r["network_type"],
                        "provider:physical_network": r["physical_network"],
                        "provider:segmentation_id": r["segmentation_id"]})
        return out


@dataclass(frozen=True)
class Subnet(Record):
    """A subnet row, with its pools, DNS servers and routes decoded."""

    @property
    def network_id(self) -> str:
        """Return the network id."""
        return str(self.row["network_id"])

    @property
    def cidr(self) -> str:
        """Return the cidr."""
        return str(self.row["cidr"])

    @property
    def pools(self) -> list[Pool]:
        """Return the pools."""
        return [Pool(parse_ip(p["start"]), parse_ip(p["end"]))
                for p in json.loads(self.row["allocation_pools"])]

    def view(self) -> dict[str, Any]:
        """Render Neutron's subnet."""
        r = self.row
        return {**common_view(r), "name": r["name"], "network_id": r["network_id"],
                "ip_version": r["ip_version"], "cidr": r["cidr"],
                "gateway_ip": r["gateway_ip"], "enable_dhcp": r["enable_dhcp"],
                "allocation_pools": json.loads(r["allocation_pools"]),
                "dns_nameservers": json.loads(r["dns_nameservers"]),
                "host_routes": json.loads(r["host_routes"]),
                "ipv6_ra_mode": None, "ipv6_address_mode": None, "subnetpool_id": None,
                "service_types": [], "dns_publish_fixed_ip": False}


@dataclass(frozen=True)
class Port(Record):
    """A port row with its fixed IPs and security groups."""

    fixed_ips: tuple[tuple[str, str], ...] = ()
    security_groups: tuple[str, ...] = ()

    @property
    def network_id(self) -> str:
        """Return the network id."""
        return str(self.row["network_id"])

    @property
    def mac_address(self) -> str:
        """Return the mac address."""
        return str(self.row["mac_address"])

    @property
    def device_owner(self) -> str:
        """Return the device owner."""
        return str(self.row["device_owner"])

    def view(self) -> dict[str, Any]:
        """Render Neutron's port (with the ``binding`` attributes)."""
        r = self.row
        host = r["host_id"]
        return {**common_view(r), "name": r["name"], "network_id": r["network_id"],
                "mac_address": r["mac_address"], "admin_state_up": r["admin_state_up"],
                "status": r["status"], "device_id": r["device_id"],
                "device_owner": r["device_owner"],
                "fixed_ips": [{"subnet_id": s, "ip_address": ip} for s, ip in self.fixed_ips],
                "allowed_address_pairs": json.loads(r["allowed_address_pairs"]),
                "extra_dhcp_opts": [], "security_groups": list(self.security_groups),
                "port_security_enabled": r["port_security_enabled"],
                "binding:host_id": host, "binding:vnic_type": "normal",
                "binding:vif_type": "bridge" if host else "unbound",
                "binding:vif_details": {"port_filter": True} if host else {},
                "binding:profile": {}}


@dataclass(frozen=True)
class Rule:
    """A security group rule row."""

    row: Mapping[str, Any]

    def view(self) -> dict[str, Any]:
        """Render Neutron's security group rule."""
        r = self.row
        out = common_view(r)
        del out["tags"]
        return {**out, "security_group_id": r["security_group_id"],
                "direction": r["direction"], "ethertype": r["ethertype"],
                "protocol": r["protocol"], "port_range_min": r["port_range_min"],
                "port_range_max": r["port_range_max"],
                "remote_ip_prefix": r["remote_ip_prefix"],
                "remote_group_id": r["remote_group_id"], "remote_address_group_id": None,
                "normalized_cidr": r["remote_ip_prefix"], "belongs_to_default_sg": None}


@dataclass(frozen=True)
class SecurityGroup(Record):
    """A security group row with its rules."""

    rules: tuple[Rule, ...] = field(default=())

    @property
    def name(self) -> str:
        """Return the name."""
        return str(self.row["name"])

    def view(self) -> dict[str, Any]:
        """Render Neutron's security group with its rules."""
        r = self.row
        return {**common_view(r), "name": r["name"], "stateful": r["stateful"], "shared": False,
                "security_group_rules": [rule.view() for rule in self.rules]}
