"""Boot through the compute API: ``POST /servers`` -> ACTIVE -> boot line, with phases.

``python -m nubis.bench boot --api [--state-dir var] [--rounds N] [--concurrent 10]``

Needs a running cloud (``make up``): logs in as the bootstrap admin from
``<state>/clouds.yaml``, boots ``m1.nano`` servers of ``nubis-test`` with
``networks: none``, and reports medians of

* *API -> ACTIVE*: the create call until ``GET /servers/{id}`` says ACTIVE (polled
  every 20 ms);
* *ACTIVE -> boot line*: until ``os-getConsoleOutput`` shows ``nubis-test-image booted``;
* the phases Nova records as instance-action events: scheduling (select + claim),
  image fetch (cached after the first boot), spawn (overlay, config drive, define,
  start) and the whole build call;

for one boot at a time and for ``--concurrent`` boots at once. Every server is
deleted again.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

BOOT_LINE = "nubis-test-image booted"
BOUND = 300.0


class Api:
    """A tiny JSON client for the cloud's compute and image endpoints."""

    def __init__(self, state_dir: Path) -> None:
        doc = yaml.safe_load((state_dir / "clouds.yaml").read_text())
        auth = doc["clouds"]["nubis-admin"]["auth"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": auth["user_domain_name"]},
            "password": auth["password"]}}}, "scope": {"project": {
                "name": auth["project_name"], "domain": {"name": auth["project_domain_name"]}}}}}
        req = urllib.request.Request(f"{auth['auth_url']}/auth/tokens", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            self.token = resp.headers["X-Subject-Token"]
            catalog = json.loads(resp.read())["token"]["catalog"]
        urls = {s["type"]: next(e["url"] for e in s["endpoints"] if e["interface"] == "public")
                for s in catalog}
        self.compute, self.image = urls["compute"].rstrip("/"), urls["image"].rstrip("/")

    def call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; return (status, JSON or None)."""
        req = urllib.request.Request(url, method=method, headers={
            "X-Auth-Token": self.token, "Content-Type": "application/json",
            "OpenStack-API-Version": "compute 2.62"},
            data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, None


def _seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def boot_one(api: Api, image_id: str, name: str, console_bound: float = BOUND
             ) -> dict[str, float]:
    """Boot one server, wait for ACTIVE and the boot line, delete it; return timings.

    A boot line that does not appear within ``console_bound`` is left out of the
    timings (under TCG on a loaded machine ten guests share two cores).
    """
    started = time.monotonic()
    status, doc = api.call("POST", f"{api.compute}/servers", {"server": {
        "name": name, "imageRef": image_id, "flavorRef": "42", "networks": "none"}})
    if status != 202:
        raise RuntimeError(f"create answered {status}")
    sid = doc["server"]["id"]
    try:
        active = _wait(api, sid, started)
        out = {"api_to_active": active, **_phases(api, sid)}
        with contextlib.suppress(TimeoutError):
            out["active_to_boot_line"] = _wait_console(api, sid, started,
                                                       active + console_bound) - active
        return out
    finally:
        api.call("DELETE", f"{api.compute}/servers/{sid}")
        deadline = time.monotonic() + BOUND  # gone before the next boot counts on quota
        while time.monotonic() < deadline and api.call(
                "GET", f"{api.compute}/servers/{sid}")[0] != 404:
            time.sleep(0.1)


def _wait(api: Api, sid: str, started: float) -> float:
    while time.monotonic() - started < BOUND:
        _status, doc = api.call("GET", f"{api.compute}/servers/{sid}")
        state = (doc or {}).get("server", {}).get("status")
        if state == "ACTIVE":
            return time.monotonic() - started
        if state == "ERROR":
            raise RuntimeError(f"server {sid} went ERROR: {doc['server'].get('fault')}")
        time.sleep(0.02)
    raise RuntimeError(f"server {sid} not ACTIVE within {BOUND:.0f} s")


def _wait_console(api: Api, sid: str, started: float, bound: float) -> float:
    while time.monotonic() - started < bound:
        _status, doc = api.call("POST", f"{api.compute}/servers/{sid}/action",
                                {"os-getConsoleOutput": {}})
        if BOOT_LINE in (doc or {}).get("output", ""):
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"no boot line from {sid} within {bound:.0f} s")


def _phases(api: Api, sid: str) -> dict[str, float]:
    _status, doc = api.call("GET", f"{api.compute}/servers/{sid}/os-instance-actions")
    create = next(a for a in doc["instanceActions"] if a["action"] == "create")
    _status, doc = api.call("GET", f"{api.compute}/servers/{sid}/os-instance-actions/"
                                   f"{create['request_id']}")
    names = {"conductor_schedule_and_build_instances": "schedule",
             "compute_fetch_images": "image_fetch", "compute_spawn": "spawn",
             "compute__do_build_and_run_instance": "build_call"}
    return {names[e["event"]]: _seconds(e["start_time_precise"], e["finish_time_precise"])
            for e in doc["instanceAction"]["events"] if e["event"] in names}


def _report(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title} (median of {len(rows)}, load average {os.getloadavg()[0]:.1f}):",
          flush=True)
    for key in ("api_to_active", "schedule", "image_fetch", "spawn", "build_call",
                "active_to_boot_line"):
        values = [r[key] for r in rows if key in r]
        if values:
            print(f"  {key:22} {statistics.median(values):7.3f} s", flush=True)


def run(state_dir: Path, rounds: int, concurrent: int) -> int:
    """Run the API boot benchmark against the cloud in ``state_dir``."""
    api = Api(state_dir)
    _status, doc = api.call("GET", f"{api.image}/v2/images?name=nubis-test")
    image_id = doc["images"][0]["id"]
    boot_one(api, image_id, "bench-warm")  # the first boot fills the host's image cache
    single = [boot_one(api, image_id, f"bench-{i}") for i in range(rounds)]
    _report("one boot at a time", single)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrent) as pool:
        many = list(pool.map(lambda i: boot_one(api, image_id, f"bench-c{i}", 60.0),
                             range(concurrent)))
    wall = time.monotonic() - started
    _report(f"{concurrent} concurrent boots", many)
    print(f"  {'all ACTIVE (max)':22} {max(r['api_to_active'] for r in many):7.3f} s")
    booted = sum(1 for r in many if "active_to_boot_line" in r)
    print(f"  {'wall':22} {wall:7.3f} s ({booted} of {concurrent} boot lines within "
          "60 s of ACTIVE)")
    return 0
