"""The per-worker budget for buffered upload bodies."""

from __future__ import annotations

from pathlib import Path

from nubis.api.proxy.backend import Backend, Rings
from nubis.common.httpclient import HTTPClient


def test_buffer_budget_reserve_and_release(tmp_path: Path) -> None:
    backend = Backend(HTTPClient(), Rings(tmp_path), node_timeout=1.0, max_handoffs=1,
                      buffer_budget=100)
    assert backend.reserve_buffer(60)
    assert not backend.reserve_buffer(50)  # would exceed: the upload streams instead
    assert backend.reserve_buffer(40)
    backend.release_buffer(60)
    assert backend.buffered == 40
    assert backend.reserve_buffer(60) and backend.buffered == 100
