"""Compiled hot paths, each with a typed pure-Python twin.

``IMPLEMENTATION`` is ``"cython"`` when the compiled kernels loaded and
``"python"`` when ``NUBIS_NO_EXTENSIONS=1`` is set or the build fell back.
Kernels do no I/O, logging or config and import nothing else of nubis.
"""

from nubis.fastpath._select import IMPLEMENTATION, NO_EXTENSIONS

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS"]
