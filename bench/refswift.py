"""The reference OpenStack Swift (PyPI ``swift``) in its own virtualenv.

Benchmarks compare nubis with the real Swift side by side. Swift and its
dependencies (eventlet, pyeclib, ...) must not leak into nubis's own ``.venv``,
so they live in ``.venv-swift`` at the repository root, created on demand:

    >>> from nubis.bench.refswift import ensure_swift_venv, swift_python
    >>> venv = ensure_swift_venv()          # idempotent; prints what it does
    >>> subprocess.run([swift_python(venv), "-c", "import swift"])

``NUBIS_SWIFT_VENV`` overrides the location. A lock file serializes concurrent
callers (several benchmarks may ask at once); a marker file written after a
successful install tells a complete venv from a half-built one.

Swift reads ``/etc/swift/swift.conf`` for the hash path prefix/suffix; code run
in this venv should set ``swift.common.utils.HASH_PATH_SUFFIX`` /
``HASH_PATH_PREFIX`` directly instead of writing ``/etc/swift``
(see :data:`SWIFT_HASH_SETUP`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: What the reference venv holds (pinned Swift, its client, and EC support).
REQUIREMENTS: tuple[str, ...] = ("swift==2.38.3", "python-swiftclient", "pyeclib")
VENV_NAME = ".venv-swift"
MARKER = ".nubis-refswift-complete"
#: Python to run first in a subprocess of the swift venv: sets the hash
#: prefix/suffix without /etc/swift/swift.conf.
SWIFT_HASH_SETUP = (
    "import swift.common.utils as _su\n"
    "_su.HASH_PATH_PREFIX = b''\n"
    "_su.HASH_PATH_SUFFIX = b'nubis-bench'\n"
)


def repo_root() -> Path:
    """Return the nubis repository root (this file lives in ``<root>/bench``)."""
    return Path(__file__).resolve().parent.parent


def swift_venv_path() -> Path:
    """Return where the reference venv lives (``NUBIS_SWIFT_VENV`` or ``<root>/.venv-swift``)."""
    override = os.environ.get("NUBIS_SWIFT_VENV")
    return Path(override) if override else repo_root() / VENV_NAME


def swift_python(venv: Path | None = None) -> Path:
    """Return the Python interpreter of the reference venv."""
    return (venv or swift_venv_path()) / "bin" / "python"


def swift_bin(name: str, venv: Path | None = None) -> Path:
    """Return a console script of the reference venv (e.g. ``swift-ring-builder``)."""
    return (venv or swift_venv_path()) / "bin" / name


def _complete(venv: Path) -> bool:
    """Tell whether ``venv`` was fully installed with the current requirements."""
    marker = venv / MARKER
    if not marker.is_file() or not swift_python(venv).exists():
        return False
    return marker.read_text().split() == list(REQUIREMENTS)


def _run(cmd: list[str]) -> None:
    """Run ``cmd`` (no shell), echoing it; raise with its output on failure."""
    print("refswift: $ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        raise RuntimeError(f"refswift: {cmd[0]} failed (exit {proc.returncode}):\n"
                           + "\n".join(tail))


def _build(venv: Path) -> None:
    """Create ``venv`` from scratch and install the requirements into it."""
    if venv.exists():
        print(f"refswift: {venv} is incomplete; recreating it", flush=True)
        shutil.rmtree(venv)
    else:
        print(f"refswift: creating {venv} (reference Swift for benchmarks)", flush=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    py = str(swift_python(venv))
    _run([py, "-m", "pip", "install", "-q", "--upgrade", "pip", "setuptools", "wheel"])
    _run([py, "-m", "pip", "install", "-q", *REQUIREMENTS])
    _run([py, "-c", "import swift, swiftclient, pyeclib; "
                    "from swift.common.ring import RingBuilder, Ring"])
    (venv / MARKER).write_text(" ".join(REQUIREMENTS) + "\n")
    print(f"refswift: {venv} ready", flush=True)


def ensure_swift_venv() -> Path:
    """Create the reference-Swift venv if it is missing or incomplete; return its path.

    Idempotent and safe to call from several processes at once (file lock).
    """
    venv = swift_venv_path()
    if _complete(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / (venv.name + ".lock")
    with open(lock_path, "w") as lock:
        print(f"refswift: waiting for lock {lock_path}", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _complete(venv):  # another process may have finished it meanwhile
                _build(venv)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return venv


def main(argv: list[str]) -> int:
    """Create the venv if needed and print its path."""
    del argv
    print(ensure_swift_venv())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
