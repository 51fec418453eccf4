"""Fetch Swift's own functional test suite and the virtualenv that runs it.

The suite is the ``test/`` tree of the ``swift`` sdist on PyPI, pinned by version
and sha256. It runs in its own virtualenv (``.venv-swift-compat``) because it
imports ``swift.common.*`` and eventlet, which must not leak into nubis's ``.venv``.
No Swift server runs: the suite talks to the nubis cloud over HTTP.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

SWIFT_VERSION = "2.38.3"
#: sha256 of ``swift-2.38.3.tar.gz`` as published on PyPI.
SDIST_SHA256 = "561b2f8acc5ce834a0a2bac200e8ccd8784cb5c4a9e3731881d2e66dec4b6006"
#: What the suite imports (boto 2.49 for the legacy s3api tests, pytest-timeout to
#: bound each test). ``awscrt`` lets botocore sign lower-case methods (the s3api
#: invalid-method tests skip without it); with it, botocore signs every SigV4
#: request with the CRT signer, as an ``pip install boto3[crt]`` user's does.
REQUIREMENTS: tuple[str, ...] = (
    f"swift=={SWIFT_VERSION}", "python-swiftclient", "boto3", "botocore", "awscrt",
    "boto==2.49.0", "pytest", "pytest-timeout",
    # swiftclient's Keystone v3 auth and the RBAC tests (tests.compat.keystone).
    "python-keystoneclient",
)
MARKER = ".nubis-compat-complete"


def repo_root() -> Path:
    """Return the repository root (this file is ``<root>/tests/compat/suite.py``)."""
    return Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Return where the sdist and its extracted ``test/`` tree are kept."""
    override = os.environ.get("NUBIS_COMPAT_CACHE")
    return Path(override) if override else repo_root() / "build" / "compat"


def venv_path() -> Path:
    """Return the suite's virtualenv (``NUBIS_SWIFT_COMPAT_VENV`` overrides)."""
    override = os.environ.get("NUBIS_SWIFT_COMPAT_VENV")
    return Path(override) if override else repo_root() / ".venv-swift-compat"


def _run(cmd: list[str]) -> None:
    print("compat: $ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
        raise RuntimeError(f"compat: {cmd[0]} failed (exit {proc.returncode}):\n"
                           + "\n".join(tail))


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_sdist(cache: Path) -> Path:
    """Download the pinned sdist into ``cache`` (once) and check its sha256."""
    sdist = cache / f"swift-{SWIFT_VERSION}.tar.gz"
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
              "--no-deps", f"swift=={SWIFT_VERSION}", "-d", str(cache)])
    digest = sha256_of(sdist)
    if digest != SDIST_SHA256:
        sdist.unlink()
        raise RuntimeError(f"compat: {sdist.name} sha256 {digest} != pinned {SDIST_SHA256}")
    return sdist


def _safe_members(tar: tarfile.TarFile, top: str) -> list[tarfile.TarInfo]:
    """Return the regular files and dirs of ``<top>/test/`` (no links, no ``..``)."""
    out = []
    for m in tar.getmembers():
        if not m.name.startswith(f"{top}/test/") or ".." in m.name.split("/"):
            continue
        if m.isfile() or m.isdir():
            out.append(m)
    return out


def ensure_suite(cache: Path) -> Path:
    """Extract only ``test/`` of the sdist; return the directory holding it."""
    top = f"swift-{SWIFT_VERSION}"
    root = cache / top
    if (root / "test" / "functional" / "tests.py").exists():
        return root
    sdist = ensure_sdist(cache)
    tmp = cache / (top + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, members=_safe_members(tar, top), filter="data")
    shutil.rmtree(root, ignore_errors=True)
    (tmp / top).rename(root)
    shutil.rmtree(tmp, ignore_errors=True)
    return root


def _complete(venv: Path) -> bool:
    marker = venv / MARKER
    return (marker.is_file() and (venv / "bin" / "python").exists()
            and marker.read_text().split() == list(REQUIREMENTS))


def ensure_venv() -> Path:
    """Create the suite's virtualenv if missing or incomplete (file-locked); return it."""
    venv = venv_path()
    if _complete(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / (venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _complete(venv):
                shutil.rmtree(venv, ignore_errors=True)
                _run([sys.executable, "-m", "venv", str(venv)])
                py = str(venv / "bin" / "python")
                _run([py, "-m", "pip", "install", "-q", "--upgrade", "pip", "setuptools",
                      "wheel"])
                _run([py, "-m", "pip", "install", "-q", *REQUIREMENTS])
                _run([py, "-c", "import swift.common.utils, swiftclient, boto3, boto, pytest"])
                (venv / MARKER).write_text(" ".join(REQUIREMENTS) + "\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return venv
