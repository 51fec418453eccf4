"""Records stuck mid-operation after an API restart are settled from what is on disk."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from nubis.api.volume.config import VolumeApiConfig
from nubis.api.volume.reconcile import reconcile
from nubis.api.volume.service import VolumeService
from nubis.api.volume.store import VolumeStore
from nubis.common.db import make_engine


class DiskDaemon:
    """The one daemon call reconcile makes: which volume files exist."""

    def __init__(self, volumes: dict[str, Any]) -> None:
        self._volumes = volumes

    async def volumes(self) -> dict[str, Any]:
        return self._volumes


def _service(tmp_path: Path, on_disk: dict[str, Any]) -> VolumeService:
    store = VolumeStore(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    store.migrate()
    return VolumeService(VolumeApiConfig(volume_url="http://127.0.0.1:9", volume_token="t"),
                         store, "http://127.0.0.1:9/volume", DiskDaemon(on_disk),  # type: ignore[arg-type]
                         None)  # type: ignore[arg-type]


def test_transitional_states_are_resolved_from_disk(tmp_path: Path) -> None:
    made, lost, gone, grown = (str(uuid.uuid4()) for _ in range(4))
    svc = _service(tmp_path, {made: {"size": 1, "snapshots": []},
                              grown: {"size": 3, "snapshots": []}})
    for ident, status in ((made, "creating"), (lost, "creating"), (gone, "deleting"),
                          (grown, "extending")):
        svc.store.insert("volume", ident, "p", ident, status, {"size": 1})
    assert asyncio.run(reconcile(svc)) == 4
    assert svc.store.get("volume", made).status == "available"  # type: ignore[union-attr]
    assert svc.store.get("volume", lost).status == "error"  # type: ignore[union-attr]
    assert svc.store.get("volume", gone) is None
    after = svc.store.get("volume", grown)
    assert after is not None and after.status == "available" and after.get("size") == 3
    messages = svc.store.select("message", "p")
    assert [m.get("resource_uuid") for m in messages] == [lost]
    assert asyncio.run(reconcile(svc)) == 0
