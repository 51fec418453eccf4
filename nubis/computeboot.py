"""Post-start work of ``nubis up`` for compute: the standard flavors.

Created as the bootstrap admin through the compute API (the catalog's ``compute``
endpoint), with devstack's ids; an existing flavor of the same name is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

#: name -> (id, vCPUs, RAM MiB, root disk GiB), devstack's ids.
FLAVORS: dict[str, tuple[str, int, int, int]] = {
    "m1.nano": ("42", 1, 128, 1),
    "m1.micro": ("84", 1, 192, 1),
    "m1.tiny": ("1", 1, 512, 1),
    "m1.small": ("2", 1, 2048, 20),
    "m1.medium": ("3", 2, 4096, 40),
}


def ensure_flavors(state_dir: Path) -> list[str]:
    """Create the missing standard flavors; return the names created."""
    from nubis.imageupload import admin_session

    session = admin_session(state_dir, service_type="compute")
    have: list[dict[str, Any]] = session.call("GET", "/flavors?is_public=None")["flavors"]
    names = {f["name"] for f in have}
    made = []
    for name, (flavor_id, vcpus, ram, disk) in FLAVORS.items():
        if name in names:
            continue
        session.call("POST", "/flavors", {"flavor": {
            "name": name, "id": flavor_id, "vcpus": vcpus, "ram": ram, "disk": disk,
            "os-flavor-access:is_public": True}})
        made.append(name)
    return made


def flavors_post_start(config: Any, state_dir: Path) -> None:
    """Create the standard flavors (``nubis up`` hook); a failure is reported, not fatal."""
    from nubis.imageupload import ImageUploadError

    try:
        made = ensure_flavors(Path(state_dir))
    except (ImageUploadError, OSError, KeyError) as exc:
        print(f"nubis up: the standard flavors were not created: {exc} (run `nubis up` "
              "again)", file=sys.stderr)
        return
    if made:
        print("Flavors: " + ", ".join(made))
