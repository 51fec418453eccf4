"""Suite-wide fixtures.

``kernels`` parametrizes a test over both fastpath implementations (the compiled
one and its pure-Python twin), like multidict's conftest. With
``NUBIS_NO_EXTENSIONS=1`` only the pure one runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import pytest
from nubis.fastpath import NO_EXTENSIONS

IMPLEMENTATIONS = ["python"] if NO_EXTENSIONS else ["python", "cython"]


@pytest.fixture(params=IMPLEMENTATIONS)
def impl_name(request: pytest.FixtureRequest) -> str:
    """Name of the fastpath implementation under test."""
    return str(request.param)


@pytest.fixture
def kernels(impl_name: str) -> Callable[[str], ModuleType]:
    """Return a loader: ``kernels("hashpath")`` gives that kernel module."""
    suffix = "c" if impl_name == "cython" else "py"

    def get(name: str) -> ModuleType:
        return importlib.import_module(f"nubis.fastpath._{name}_{suffix}")

    return get
