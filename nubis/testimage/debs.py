"""Fetch and unpack Debian packages with the machine's own apt and dpkg.

The test image is built from Debian packages only: ``apt-get download`` fetches
a ``.deb`` (verified by apt against the signed archive index) and ``dpkg -x``
unpacks it. Every command is an argv list; package names come from this
module's constants and from the ``Depends`` field of a downloaded package.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nubis.testimage.errors import TestImageError

#: ``name (= version)`` in a Depends field.
_EXACT_DEP = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)\s*\(\s*=\s*([^)\s]+)\s*\)\s*$")
#: Characters apt accepts in a ``name=version`` argument (no option injection).
_SAFE_ARG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.:~=_-]*$")


@dataclass(frozen=True)
class Deb:
    """One downloaded Debian package."""

    name: str
    version: str
    path: Path


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 600.0) -> str:
    """Run ``argv``; return stdout or raise TestImageError with its stderr."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise TestImageError(f"{argv[0]} not found: install the Makefile's APT_PACKAGES") from exc
    except subprocess.TimeoutExpired as exc:
        raise TestImageError(f"{' '.join(argv)} took longer than {timeout:.0f} s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {done.returncode}"
        raise TestImageError(f"{' '.join(argv)}: {last}")
    return done.stdout


def control_field(deb: Path, name: str) -> str:
    """Return one control field of a ``.deb`` (``dpkg-deb -f``)."""
    return _run(["dpkg-deb", "-f", str(deb), name]).strip()


def download(spec: str, dest: Path) -> Deb:
    """``apt-get download spec`` into ``dest``; ``spec`` is ``name`` or ``name=version``.

    Raises:
        TestImageError: apt cannot find or fetch the package (run ``apt-get update``).
    """
    if not _SAFE_ARG.match(spec):
        raise TestImageError(f"refusing package spec {spec!r}")
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.glob("*.deb"))
    argv = ["apt-get", "-q"]
    if os.geteuid() == 0:
        # apt drops to the _apt user for downloads, which cannot write a 0700 dir.
        argv += ["-o", "APT::Sandbox::User=root"]
    try:
        _run([*argv, "download", spec], cwd=dest)
    except TestImageError as exc:
        raise TestImageError(f"{exc} (is the apt index current? try `apt-get update`)") from exc
    name = spec.split("=", 1)[0]
    new = sorted(set(dest.glob("*.deb")) - before) or sorted(dest.glob(f"{name}_*.deb"))
    if not new:
        raise TestImageError(f"apt-get download {spec} produced no .deb in {dest}")
    path = new[-1]
    return Deb(control_field(path, "Package"), control_field(path, "Version"), path)


def exact_dependency(deb: Deb, prefix: str) -> tuple[str, str]:
    """Return ``(name, version)`` of the ``name (= version)`` dependency starting with ``prefix``.

    A metapackage such as ``linux-image-cloud-amd64`` depends on exactly one
    versioned kernel package; this resolves it.
    """
    for alternative in control_field(deb.path, "Depends").split(","):
        m = _EXACT_DEP.match(alternative.split("|")[0])
        if m and m.group(1).startswith(prefix):
            return m.group(1), m.group(2)
    raise TestImageError(f"{deb.name} {deb.version} has no '{prefix}* (= version)' dependency")


def extract(deb: Deb, dest: Path) -> Path:
    """Unpack ``deb``'s files into ``dest`` (``dpkg -x``) and return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg", "-x", str(deb.path), str(dest)])
    return dest
