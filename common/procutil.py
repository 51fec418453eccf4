"""Process plumbing shared by every multi-process server: die with the parent.

A server that forks workers sharing its listening socket must not leave them
behind when it is killed outright (``kill -9`` runs no handler): orphaned
workers would keep serving the port, and the restarted server could not bind
it. :func:`die_with_parent` asks the kernel (``prctl(PR_SET_PDEATHSIG)``) to
signal a worker the moment its parent dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

#: ``<linux/prctl.h>``: PR_SET_PDEATHSIG.
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies.

    Call it in the child right after ``fork()``, with the parent's pid read
    before the fork. If the parent is already gone (it died between the fork
    and this call), ``sig`` is raised at once.

    Returns:
        Whether the kernel accepted the request (False off Linux).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        ok = bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        ok = False
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return ok
