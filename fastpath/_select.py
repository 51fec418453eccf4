"""Choose between compiled and pure-Python kernels (like yarl's ``_quoting``)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NO_EXTENSIONS: bool = bool(os.environ.get("NUBIS_NO_EXTENSIONS"))


def load(name: str) -> tuple[ModuleType, str]:
    """Return the compiled ``_{name}_c`` module, or the ``_{name}_py`` twin."""
    if not NO_EXTENSIONS:
        try:
            return importlib.import_module(f"nubis.fastpath._{name}_c"), "cython"
        except ImportError:
            pass
    return importlib.import_module(f"nubis.fastpath._{name}_py"), "python"


def _probe() -> str:
    _, impl = load("hashpath")
    return impl


IMPLEMENTATION: str = _probe()
