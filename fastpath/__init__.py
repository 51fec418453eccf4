"""Compiled hot paths, each with a typed pure-Python twin.

``IMPLEMENTATION`` is ``"cython"`` when the compiled kernels loaded and
``"python"`` when ``NUBIS_NO_EXTENSIONS=1`` is set or the build fell back.
Kernels do no logging or config and import nothing else of nubis. They do no
I/O either, with one named exception: ``durable`` (``place_durably``) exists to
run the system calls of one durable file placement -- mkdir, rename,
``fdatasync``, directory ``fsync`` -- as a single call without the GIL; the
caller gives it every path and fd, so it still reads no config and decides
nothing. ``_durable_py.fsync_dir``/``makedirs`` are the project's only copies of
those two steps.
"""

from nubis.fastpath._select import IMPLEMENTATION, NO_EXTENSIONS

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS"]
