"""nubis.ring: ring builder, ring file format and ring lookup.

Names are imported lazily (PEP 562) so that importing one piece (say the file
format) does not pull in the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nubis.ring.builder import RingBuilder
    from nubis.ring.ring import Ring
    from nubis.ring.ringdata import RingData, load_ring_file, write_ring_file

_EXPORTS = {
    "Ring": "nubis.ring.ring",
    "RingBuilder": "nubis.ring.builder",
    "RingData": "nubis.ring.ringdata",
    "load_ring_file": "nubis.ring.ringdata",
    "write_ring_file": "nubis.ring.ringdata",
}

__all__ = ["Ring", "RingBuilder", "RingData", "load_ring_file", "write_ring_file"]


def __getattr__(name: str) -> Any:
    """Import an exported name on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nubis.ring' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
