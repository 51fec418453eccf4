"""Post-start work of ``nubis up`` for networking: the demo cloud's networks and router.

As devstack does, through the network API (the catalog's ``network`` endpoint): the
demo project's network ``private`` with subnet ``private-subnet`` (``10.0.0.0/26``);
the admin's external network ``public`` (``router:external``, flat) with subnet
``public-subnet`` (``172.24.4.0/24``, no DHCP; its gateway ``172.24.4.1`` is the
network agent's external namespace, never the host); and the demo project's
``router1`` with its gateway on ``public`` and an interface on ``private-subnet``.
Whatever already exists by those names is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PRIVATE_NETWORK = "private"
PRIVATE_SUBNET = "private-subnet"
PRIVATE_CIDR = "10.0.0.0/26"
PUBLIC_NETWORK = "public"
PUBLIC_SUBNET = "public-subnet"
PUBLIC_CIDR = "172.24.4.0/24"
ROUTER = "router1"


def ensure_private_network(state_dir: Path) -> bool:
    """Create the demo project's ``private`` network and subnet; return whether it was made."""
    from nubis.imageupload import admin_session

    session = admin_session(state_dir, cloud="nubis-demo", service_type="network")
    have: list[dict[str, Any]] = session.call(
        "GET", f"/v2.0/networks?name={PRIVATE_NETWORK}")["networks"]
    mine = [n for n in have if not n.get("shared") and not n.get("router:external")]
    if mine and mine[0]["subnets"]:
        return False
    net = mine[0] if mine else session.call("POST", "/v2.0/networks", {
        "network": {"name": PRIVATE_NETWORK}})["network"]
    session.call("POST", "/v2.0/subnets", {"subnet": {
        "name": PRIVATE_SUBNET, "network_id": net["id"], "ip_version": 4,
        "cidr": PRIVATE_CIDR}})
    return True


def ensure_public_router(state_dir: Path) -> bool:
    """Create ``public`` (admin) and the demo ``router1`` joining it to ``private``.

    Returns:
        Whether the router was made (False: it existed, or ``private`` is missing).
    """
    from nubis.imageupload import admin_session

    admin = admin_session(state_dir, cloud="nubis-admin", service_type="network")
    have: list[dict[str, Any]] = admin.call(
        "GET", f"/v2.0/networks?name={PUBLIC_NETWORK}&router:external=true")["networks"]
    public = have[0] if have else admin.call("POST", "/v2.0/networks", {"network": {
        "name": PUBLIC_NETWORK, "router:external": True, "shared": False,
        "provider:network_type": "flat"}})["network"]
    if not public["subnets"]:
        admin.call("POST", "/v2.0/subnets", {"subnet": {
            "name": PUBLIC_SUBNET, "network_id": public["id"], "ip_version": 4,
            "cidr": PUBLIC_CIDR, "enable_dhcp": False}})
    demo = admin_session(state_dir, cloud="nubis-demo", service_type="network")
    if demo.call("GET", f"/v2.0/routers?name={ROUTER}")["routers"]:
        return False
    subnets = demo.call("GET", f"/v2.0/subnets?name={PRIVATE_SUBNET}")["subnets"]
    if not subnets:
        return False
    router = demo.call("POST", "/v2.0/routers", {"router": {
        "name": ROUTER, "external_gateway_info": {"network_id": public["id"]}}})["router"]
    demo.call("PUT", f"/v2.0/routers/{router['id']}/add_router_interface",
              {"subnet_id": subnets[0]["id"]})
    return True


def network_post_start(config: Any, state_dir: Path) -> None:
    """Create the demo networks and router (``nubis up`` hook); failures are reported."""
    from nubis.imageupload import ImageUploadError

    try:
        made = ensure_private_network(Path(state_dir))
        routed = ensure_public_router(Path(state_dir))
    except (ImageUploadError, OSError, KeyError) as exc:
        print(f"nubis up: the demo networks were not created: {exc} (run `nubis up` "
              "again)", file=sys.stderr)
        return
    if made:
        print(f"Network: {PRIVATE_NETWORK} ({PRIVATE_CIDR}) for the demo project")
    if routed:
        print(f"Network: {PUBLIC_NETWORK} ({PUBLIC_CIDR}, external) and {ROUTER} "
              f"({PRIVATE_NETWORK} -> {PUBLIC_NETWORK}, SNAT)")
