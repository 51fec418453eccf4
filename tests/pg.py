"""A throwaway PostgreSQL cluster owned by the tests that need one.

``initdb`` into a fresh temporary directory, then ``pg_ctl start`` on a free
loopback port from :mod:`tests.ports` (``listen_addresses = '127.0.0.1'``, the
unix socket inside that directory, password auth for one superuser with a random
password). PostgreSQL refuses to run as root, so under root the binaries run as
the ``postgres`` system user (or ``nobody``) through ``runuser -u USER --`` with
an argument list, and that user owns the directory. The finalizer stops the
server (``pg_ctl stop -m fast``, then ``immediate``) and deletes the directory.

The binaries are searched in ``/usr/lib/postgresql/*/bin`` (Debian's
``postgresql`` package, installed by ``make deps``). Without them the tests
FAIL; a developer without PostgreSQL can set ``NUBIS_SKIP_POSTGRES=1`` to skip
them instead.

Use: ``from tests.pg import pg_cluster  # noqa: F401`` in a test module makes
the module-scoped fixture ``pg`` available (a start costs under a second);
``pg.new_database()`` returns the ``postgresql://`` URL of a fresh, empty database.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ports import HOST, free_port

OPT_OUT_ENV = "NUBIS_SKIP_POSTGRES"
SEARCH = Path("/usr/lib/postgresql")
SUPERUSER = "nubis"

#: Appended to postgresql.conf: loopback only, small, and no durability (a test cluster).
SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
max_connections = 300
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
deadlock_timeout = 100ms
"""


def find_bindir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl."""
    found = []
    for bindir in SEARCH.glob("*/bin"):
        major = bindir.parent.name
        if re.fullmatch(r"\d+", major) and all(
                (bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            found.append((int(major), bindir))
    return max(found)[1] if found else None


def require_bindir() -> Path:
    """Return the PostgreSQL binaries; fail (or skip, when opted out) without them."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.environ.get(OPT_OUT_ENV) == "1":
        pytest.skip(f"PostgreSQL server not installed and {OPT_OUT_ENV}=1")
    pytest.fail(f"PostgreSQL server binaries not found in {SEARCH}/*/bin: install Debian's "
                f"`postgresql` package (`make deps`), or set {OPT_OUT_ENV}=1 to skip the "
                "PostgreSQL tests", pytrace=False)


def _run_as() -> pwd.struct_passwd | None:
    """Return the unprivileged user to run PostgreSQL as (None: the current user)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


@dataclass
class PgCluster:
    """One PostgreSQL server in its own temporary directory."""

    bindir: Path
    root: Path
    user: pwd.struct_passwd | None
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    databases: int = 0

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """Return the ``postgresql://`` URL (as an operator writes it) of ``database``."""
        return (f"postgresql://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{database}")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run one PostgreSQL binary as the cluster's user; raise with its output on failure."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, check=False)
        if proc.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stdout}"
                               f"{proc.stderr}\n{log[-2000:]}")
        return proc

    def init(self) -> None:
        """Create the cluster: one password-authenticated superuser, UTF-8."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        try:
            self.run("initdb", "-D", str(self.datadir), "-U", SUPERUSER,
                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                     "--locale=C.UTF-8", "--no-sync", "--no-instructions")
        finally:
            pwfile.unlink()
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(sockets=self.root))

    def start(self, attempts: int = 3) -> None:
        """Start on a free loopback port (another one if that was just taken)."""
        for attempt in range(attempts):
            self.port = free_port()
            auto = self.datadir / "postgresql.auto.conf"
            auto.write_text(f"port = {self.port}\n")
            self._own(auto)
            try:
                self.run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                         "-w", "-t", "60", "start")
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise

    def stop(self) -> None:
        """Stop the server (fast, then immediate) if it runs."""
        if not (self.datadir / "postmaster.pid").exists():
            return
        for mode in ("fast", "immediate"):
            try:
                self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "30",
                         "stop")
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                continue

    def new_database(self) -> str:
        """Create a fresh empty database; return its URL."""
        import psycopg
        from psycopg import sql

        self.databases += 1
        name = f"t{self.databases}_{secrets.token_hex(4)}"
        with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER,
                             password=self.password, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)


def start_cluster() -> PgCluster:
    """Create and start a cluster in a new temporary directory (caller must stop it)."""
    bindir = require_bindir()
    user = _run_as()
    # Not under pytest's basetemp: that is private to root, and the server user must
    # reach its own directory.
    root = Path(tempfile.mkdtemp(prefix="nubis-pg-"))
    cluster = PgCluster(bindir, root, user)
    try:
        cluster._own(root)
        cluster.init()
        cluster.start()
    except BaseException:
        destroy(cluster)
        raise
    return cluster


def destroy(cluster: PgCluster) -> None:
    """Stop the server and delete its directory."""
    try:
        cluster.stop()
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="module", name="pg")
def pg_cluster() -> Iterator[PgCluster]:
    """Module fixture: one throwaway PostgreSQL server, stopped and deleted after the module."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        destroy(cluster)
