"""The watchdog ``nubis up`` leaves running: restart any daemon that exits.

``nubis supervise --state-dir var`` (started detached by ``nubis up``, pid file
``<state>/run/supervise.pid``) starts every process of the plan that is not
running, adopts the ones that are (an earlier watchdog's), and checks them a
few times a second. A process that exits is restarted after a delay that
doubles with each quick exit in a row (:class:`Backoff`); after
``crash_loop`` quick exits it is reported as a crash loop and retried only
every ``cap`` seconds instead of spun. Every exit is written to
``run/<label>.exit.json`` (status, run time, log tail) for ``nubis status``.
A process held by ``nubis down LABEL`` is left down. SIGHUP (sent by every
``nubis up``) re-reads the config and watches the processes it added.

On SIGTERM the watchdog exits and leaves the daemons running: ``nubis down``
stops it first, then stops each daemon's process group itself. The daemons do
their work in ``run``/``run_forever``; how they are kept running is this
module's alone.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.supervisor import ExitRecord, Process, Supervisor, is_our_daemon

LOG = logging.getLogger("nubis.watchdog")

#: The watchdog's label (pid file ``run/supervise.pid``, log ``log/supervise.log``).
LABEL = "supervise"


@dataclass(frozen=True)
class Backoff:
    """When to restart a process that exited.

    A process that ran at least ``stable`` seconds before exiting starts a new
    count. The n-th quick exit in a row waits ``base * 2**(n-1)`` seconds, at
    most ``cap``; from the ``crash_loop``-th on it is a crash loop and waits ``cap``.
    """

    base: float = 0.5
    cap: float = 60.0
    stable: float = 10.0
    crash_loop: int = 5

    def failures(self, previous: int, ran_seconds: float) -> int:
        """Return the count of quick exits in a row after an exit."""
        return 1 if ran_seconds >= self.stable else previous + 1

    def delay(self, failures: int) -> float:
        """Return the seconds to wait before the next start."""
        if self.is_crash_loop(failures):
            return self.cap
        return float(min(self.cap, self.base * 2.0 ** max(0, failures - 1)))

    def is_crash_loop(self, failures: int) -> bool:
        """Tell whether ``failures`` quick exits in a row are a crash loop."""
        return failures >= self.crash_loop


class _Slot:
    """The watchdog's view of one process (mutable, private to the loop)."""

    def __init__(self, proc: Process) -> None:
        self.proc = proc
        self.child: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.started = 0.0
        self.failures = 0
        self.next_start = 0.0

    def running(self) -> bool:
        if self.pid is None:
            return False
        if self.child is not None:
            return self.child.poll() is None
        return is_our_daemon(self.pid, self.proc.daemon)

    def exit_status(self) -> int | None:
        return None if self.child is None else self.child.returncode


class Watchdog:
    """Keep every process of a plan running."""

    def __init__(self, sup: Supervisor, procs: list[Process], backoff: Backoff | None = None,
                 interval: float = 0.2,
                 reload: Callable[[], tuple[Supervisor, list[Process]]] | None = None) -> None:
        self.sup = sup
        self.backoff = backoff or Backoff()
        self.interval = interval
        self.slots: list[_Slot] = []
        self.stopping = threading.Event()
        self._reload = reload
        self._reload_wanted = False
        self.watch(procs)

    def watch(self, procs: list[Process]) -> None:
        """Add the processes of ``procs`` not watched yet (storage first)."""
        known = {slot.proc.label for slot in self.slots}
        # Storage first so the front ends' first requests find them.
        for proc in sorted(procs, key=lambda p: p.node is None):
            if proc.label not in known:
                self.slots.append(_Slot(proc))

    def reload(self) -> None:
        """Re-read the config: watch processes it added (``nubis up`` sends SIGHUP)."""
        self._reload_wanted = False
        if self._reload is None:
            return
        try:
            self.sup, procs = self._reload()
        except (SystemExit, Exception) as exc:  # a broken config: keep the old plan
            LOG.error("cannot reload the config: %s", exc)
            return
        self.watch(procs)

    def run_once(self, now: float | None = None) -> None:
        """Check every process once: record exits, start what is due."""
        for slot in self.slots:
            self._check(slot, time.monotonic() if now is None else now)

    def run_forever(self) -> int:
        """Check until SIGTERM/SIGINT (SIGHUP: :meth:`reload`); leave the daemons running."""
        def stop(_signum: int, _frame: Any) -> None:
            self.stopping.set()

        def hup(_signum: int, _frame: Any) -> None:
            self._reload_wanted = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)
        LOG.info("watching %d processes", len(self.slots))
        while not self.stopping.is_set():
            if self._reload_wanted:
                self.reload()
            self.run_once()
            self.stopping.wait(self.interval)
        LOG.info("stopped; daemons left running")
        return 0

    def _check(self, slot: _Slot, now: float) -> None:
        if slot.running():
            return
        if slot.pid is not None:
            self._exited(slot, now)
        if self.sup.held(slot.proc) or now < slot.next_start:
            return
        adopted = self.sup.read_pid(slot.proc)
        if adopted is not None:
            slot.child, slot.pid, slot.started = None, adopted, now
            return
        try:
            slot.child = self.sup.spawn(slot.proc)
        except OSError as exc:
            LOG.error("cannot start %s: %s", slot.proc.label, exc)
            slot.failures += 1
            slot.next_start = now + self.backoff.delay(slot.failures)
            return
        slot.pid, slot.started = slot.child.pid, now
        LOG.info("started %s (pid %d)", slot.proc.label, slot.pid)

    def _exited(self, slot: _Slot, now: float) -> None:
        ran = now - slot.started
        slot.failures = self.backoff.failures(slot.failures, ran)
        delay = self.backoff.delay(slot.failures)
        crash_loop = self.backoff.is_crash_loop(slot.failures)
        record = ExitRecord(slot.proc.label, time.time(), slot.exit_status(), round(ran, 3),
                            slot.failures, crash_loop, delay, self.sup.log_tail(slot.proc))
        (LOG.error if crash_loop else LOG.warning)(
            "%s %s after %.1fs; %srestart in %gs", slot.proc.label, record.describe(), ran,
            "crash loop, " if crash_loop else "", delay)
        try:
            self.sup.write_exit(record)
        except OSError as exc:
            LOG.error("cannot record the exit of %s: %s", slot.proc.label, exc)
        if self.sup.read_pid(slot.proc) is None:
            self.sup.pid_file(slot.proc).unlink(missing_ok=True)
        slot.child, slot.pid = None, None
        slot.next_start = now + delay


def pid_file(state_dir: Path) -> Path:
    """Return the watchdog's pid file."""
    return state_dir / "run" / f"{LABEL}.pid"


def running_pid(state_dir: Path) -> int | None:
    """Return the pid of the state directory's watchdog if it runs."""
    try:
        pid = int(pid_file(state_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_our_daemon(pid, LABEL) else None


def ensure_running(state_dir: Path) -> tuple[int, bool]:
    """Start the watchdog of ``state_dir`` unless it runs; return ``(pid, started)``."""
    pid = running_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)  # pick up daemons the config gained
        return pid, False
    (state_dir / "run").mkdir(parents=True, exist_ok=True)
    (state_dir / "log").mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "nubis", LABEL, "--state-dir", str(state_dir)]
    # Ignored signals survive exec: a SIGHUP from a quick second ``nubis up`` cannot
    # kill the watchdog before it installs its reload handler.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with open(state_dir / "log" / f"{LABEL}.log", "ab") as log:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     close_fds=True, env=dict(os.environ))
    finally:
        signal.signal(signal.SIGHUP, previous)
    pid_file(state_dir).write_text(f"{child.pid}\n")
    return child.pid, True
