"""Post-start work of ``nubis up`` for networking: the demo project's ``private`` network.

Created as the demo user through the network API (the catalog's ``network``
endpoint), as devstack does: network ``private`` with subnet ``private-subnet``
(``10.0.0.0/26``); an existing network of that name is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PRIVATE_NETWORK = "private"
PRIVATE_SUBNET = "private-subnet"
PRIVATE_CIDR = "10.0.0.0/26"


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


def network_post_start(config: Any, state_dir: Path) -> None:
    """Create the demo network (``nubis up`` hook); a failure is reported, not fatal."""
    from nubis.imageupload import ImageUploadError

    try:
        made = ensure_private_network(Path(state_dir))
    except (ImageUploadError, OSError, KeyError) as exc:
        print(f"nubis up: the private network was not created: {exc} (run `nubis up` "
              "again)", file=sys.stderr)
        return
    if made:
        print(f"Network: {PRIVATE_NETWORK} ({PRIVATE_CIDR}) for the demo project")
