"""A whole ``nubis up`` cloud for the image tests, and small helpers to drive it.

Images are stored in 8 MiB segments here (``[image] segment_size``) so the large
image tests cross segment boundaries without gigabytes of data.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openstack
import pytest
import requests
import swiftclient
import yaml

from tests.functional.proxy.cloud import Cloud, start_cloud
from tests.ports import free_port

SEGMENT = 8 * 1024 * 1024
#: ``[image] import_timeout`` of the test cloud: also how long an import's lease
#: outlives its process (0.2 s renewals x 6 is less).
IMPORT_TIMEOUT = 8.0
OPENSTACK = str(Path(sys.executable).with_name("openstack"))


@dataclass
class ImageCloud:
    """The running cloud plus ready-made logins."""

    cloud: Cloud
    image_url: str

    @property
    def state(self) -> Path:
        return self.cloud.state

    def auth(self, name: str) -> dict[str, Any]:
        doc = yaml.safe_load((self.state / "clouds.yaml").read_text())
        auth: dict[str, Any] = doc["clouds"][name]["auth"]
        return auth

    def token(self, user: str, password: str, project: str) -> tuple[str, str]:
        """Return ``(token, project_id)`` of a password login."""
        auth_url = self.auth("nubis-admin")["auth_url"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
        r = requests.post(f"{auth_url}/auth/tokens", json=body, timeout=30)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]

    def login(self, name: str) -> tuple[str, str]:
        a = self.auth(name)
        return self.token(a["username"], a["password"], a["project_name"])

    def sdk(self, name: str) -> openstack.connection.Connection:
        os.environ["OS_CLIENT_CONFIG_FILE"] = str(self.state / "clouds.yaml")
        try:
            return openstack.connect(cloud=name)
        finally:
            del os.environ["OS_CLIENT_CONFIG_FILE"]

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.state / "clouds.yaml")
        return env

    def osc(self, *args: str, cloud: str = "nubis-demo", check: bool = True,
            project: Project | None = None) -> Any:
        """Run ``openstack`` as a clouds.yaml cloud (or a project's user); parse JSON output."""
        login = ["--os-cloud", cloud]
        env = self.cli_env()
        if project is not None:
            del env["OS_CLIENT_CONFIG_FILE"]
            login = ["--os-auth-url", self.auth("nubis-admin")["auth_url"],
                     "--os-username", project.user, "--os-password", project.password,
                     "--os-project-name", project.name, "--os-user-domain-name", "Default",
                     "--os-project-domain-name", "Default", "--os-identity-api-version", "3"]
        proc = subprocess.run([OPENSTACK, *login, *args], capture_output=True,
                              text=True, timeout=300, env=env, check=False)
        if check:
            assert proc.returncode == 0, (args, proc.stderr)
        if check and "-f" in args and "json" in args:
            return json.loads(proc.stdout)
        return proc

    def http(self, method: str, path: str, token: str, **kw: Any) -> requests.Response:
        headers = {"X-Auth-Token": token, "Accept": "application/json",
                   **kw.pop("headers", {})}
        return requests.request(method, f"{self.image_url}{path}", headers=headers,
                                timeout=120, **kw)

    def service_objects(self, prefix: str) -> list[str]:
        """List the image service account's objects whose names start with ``prefix``."""
        conf = self.cloud.config
        password = conf.image.resolved_service_password(conf.cluster.hash_path_prefix,
                                                        conf.cluster.hash_path_suffix)
        conn = swiftclient.Connection(
            authurl=self.auth("nubis-admin")["auth_url"], user="glance", key=password,
            auth_version="3", os_options={"project_name": "service",
                                          "user_domain_name": "Default",
                                          "project_domain_name": "Default"}, retries=0)
        try:
            _, objs = conn.get_container("glance", prefix=prefix)
        except swiftclient.ClientException as exc:
            if exc.http_status == 404:
                return []
            raise
        return [o["name"] for o in objs]


class WebSource:
    """Loopback HTTP servers an image can be ``web-download``-ed from.

    ``main`` (127.0.0.1) serves :attr:`data` as ``/disk.raw`` (with a length),
    ``/chunked.raw``, ``/redirect`` (to ``/disk.raw``), ``/to-blocked`` (a redirect
    to ``blocked``), ``/short`` (cut before its Content-Length), ``/slow`` (more
    than a segment at once, then a byte every 0.1 s — a download that stays alive —
    until :attr:`release` is set or the client goes away) and 404s; ``blocked``
    (127.0.0.2) is in the cloud's blocked networks. ``hits`` lists every request
    path each one received.
    """

    def __init__(self) -> None:
        self.data = random.Random(7).randbytes(3 * 1024 * 1024 + 7)
        self.release = threading.Event()
        self.hits: dict[str, list[str]] = {"main": [], "blocked": []}
        self.port, self.blocked_port = free_port(), free_port()
        self.servers = [self._serve("main", "127.0.0.1", self.port),
                        self._serve("blocked", "127.0.0.2", self.blocked_port)]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self, name: str, host: str, port: int) -> http.server.ThreadingHTTPServer:
        source = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                source.hits[name].append(self.path)
                data = source.data
                if self.path == "/redirect":
                    self._answer(302, b"", {"Location": "/disk.raw"})
                elif self.path == "/to-blocked":
                    self._answer(302, b"", {"Location": f"http://127.0.0.2:"
                                                        f"{source.blocked_port}/disk.raw"})
                elif self.path == "/disk.raw":
                    self._answer(200, data, {})
                elif self.path == "/chunked.raw":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(data), 1 << 20):
                        piece = data[i:i + (1 << 20)]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/short":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                elif self.path == "/slow":
                    self._slow()
                else:
                    self._answer(404, b"no such file", {})

            def _slow(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(4 * SEGMENT))
                self.end_headers()
                try:
                    self.wfile.write(bytes(SEGMENT + 1024))
                    while not source.release.wait(0.1):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                except OSError:  # the downloading process went away
                    pass
                self.close_connection = True

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = http.server.ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def close(self) -> None:
        self.release.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="session")
def web_source() -> Iterator[WebSource]:
    source = WebSource()
    try:
        yield source
    finally:
        source.close()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory,
           web_source: WebSource) -> Iterator[ImageCloud]:
    # web-download may reach the test's own loopback server (not the default);
    # import leases are renewed every 0.2 s and lapse after import_timeout (8 s),
    # swept for every 0.5 s, so a stopped import is recovered within seconds
    ports = [80, 443, web_source.port, web_source.blocked_port]
    config = (f"\n[image]\nsegment_size = {SEGMENT}\nimport_allowed_ports = {ports}\n"
              'import_blocked_networks = ["127.0.0.2/32", "169.254.0.0/16"]\n'
              f"import_timeout = {IMPORT_TIMEOUT}\nimport_lease_interval = 0.2\n"
              "import_recovery_interval = 0.5\n")
    cloud = start_cloud(tmp_path_factory.mktemp("image") / "state", extra_config=config)
    public = cloud.config.api.resolved_public_url(cloud.config.cluster.bind_ip)
    try:
        yield ImageCloud(cloud, f"{public}/image")
    finally:
        cloud.down()


@dataclass
class Project:
    """A throwaway project with a member user."""

    id: str
    name: str
    user: str
    password: str


@pytest.fixture(scope="session")
def alt(images: ImageCloud) -> Project:
    """A third project ("alt") with its own member user."""
    conn = images.sdk("nubis-admin")
    sfx = uuid.uuid4().hex[:6]
    project = conn.identity.create_project(name=f"alt-{sfx}", domain_id="default")
    user = conn.identity.create_user(name=f"alt-{sfx}", password="alt-secret",
                                     domain_id="default")
    role = next(r for r in conn.identity.roles() if r.name == "member")
    conn.identity.assign_project_role_to_user(project, user, role)
    return Project(project.id, project.name, user.name, "alt-secret")


def becomes(images: ImageCloud, token: str, image_id: str, status: str,
             bound: float = 120.0) -> dict[str, Any]:
    """Poll the image until it has ``status`` (bounded in time); return it."""
    deadline = time.monotonic() + bound
    while True:
        doc: dict[str, Any] = images.http("GET", f"/v2/images/{image_id}", token).json()
        if doc["status"] == status:
            return doc
        assert time.monotonic() < deadline, (image_id, doc["status"], status)
        time.sleep(0.2)


def api_restarted(images: ImageCloud, old_pid: int, bound: float = 120.0) -> None:
    """Wait until the watchdog has started a new api process and it answers."""
    health = images.image_url.rsplit("/image", 1)[0] + "/healthcheck"
    deadline = time.monotonic() + bound
    while True:
        try:
            if images.cloud.pid("api") != old_pid and requests.get(
                    health, timeout=5).status_code == 200:
                return
        except (OSError, ValueError, requests.RequestException):
            pass
        assert time.monotonic() < deadline, "the api process did not come back"
        time.sleep(0.2)
