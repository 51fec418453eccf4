"""CPU time and context switches of a set of process groups, from ``/proc``.

A benchmark takes a :func:`snapshot` before and after a workload and prints
:func:`per_op` of the difference: CPU milliseconds and context switches per
operation, in total and by process kind (``proxy``, ``object-server``, ...).
Context switches are summed over every thread (``/proc/<pid>/task/*/status``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """CPU seconds and context switches of one process."""

    kind: str
    cpu: float
    switches: int


def _kind(pid: int) -> str:
    """Name a process by what it runs (``nubis daemon X`` / ``run_wsgi(... X)``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if "daemon" in words and words.index("daemon") + 1 < len(words):
        return words[words.index("daemon") + 1]
    if words and words[-1].endswith("-server"):  # the SAIO's launcher: conf, section
        return words[-1]
    return Path(words[0]).name if words else "?"


def _usage(pid: int) -> Usage | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
        switches = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return Usage(_kind(pid), cpu, switches)


def group_pids(pgids: Iterable[int]) -> list[int]:
    """Return the live processes of the process groups ``pgids``."""
    wanted = set(pgids)
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in wanted:
            out.append(int(entry.name))
    return out


def snapshot(pids: Iterable[int]) -> dict[int, Usage]:
    """Return the current usage of each live process of ``pids``."""
    out = {}
    for pid in pids:
        usage = _usage(pid)
        if usage is not None:
            out[pid] = usage
    return out


def per_op(before: dict[int, Usage], after: dict[int, Usage], ops: int) -> str:
    """Describe CPU ms and context switches per operation, total and by kind."""
    if ops <= 0:
        return ""
    cpu: dict[str, float] = {}
    switches = 0
    for pid, now in after.items():
        then = before.get(pid, Usage(now.kind, 0.0, 0))
        cpu[now.kind] = cpu.get(now.kind, 0.0) + now.cpu - then.cpu
        switches += now.switches - then.switches
    total = sum(cpu.values())
    kinds = ", ".join(f"{k} {1000 * v / ops:.2f}" for k, v in
                      sorted(cpu.items(), key=lambda kv: -kv[1]) if v > 0)
    return (f"CPU {1000 * total / ops:.2f} ms/op ({kinds}); "
            f"{switches / ops:.1f} context switches/op")
