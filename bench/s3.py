"""S3 benchmark: PUT/GET through the S3 API vs the Swift API on the same nubis, same run.

``python -m nubis.bench s3 [--small N] [--large N] [--concurrency C] [--rounds R]
[--reference rgw] [--multipart-mib 1024]``

A whole cloud from ``nubis up``; EC2 credentials from ``openstack ec2
credentials create``; a Keystone token for the same project. The raw load
generator (:mod:`nubis.bench.loadgen`) sends 4 KiB and 1 MiB PUTs then GETs
over keep-alive connections: Swift requests carry ``X-Auth-Token``, S3 requests
are SigV4 header-signed by botocore's signer (payload SHA-256 included, signed
before the clock starts). Rounds interleave the targets to cancel drift; the
best round of each is reported, with the S3/Swift ratio (target: SigV4 costs
at most 15 %, i.e. ratio >= 0.85), and the proxy's CPU time per request (from
``/proc``; on a shared machine it shows the SigV4 cost better than ops/s).

``--reference rgw`` adds Ceph RGW (:mod:`nubis.bench.refrgw`: one mon, one
BlueStore OSD, pools of size 1) as a third target in the same rounds, and runs
nubis with a one-replica default policy (equal copy count) on one storage node
(one object, container and account server: equal device count, as RGW's one
OSD; ``--storage-nodes 4`` for the all-in-one's layout); it prints
nubis-S3/RGW ratios (targets: 4 KiB PUT >= 2x, GET >= 3x, 1 MiB >= 1x).

``--multipart-mib N`` also uploads N MiB through S3 as one PutObject and as a
multipart upload (boto3's transfer manager, the ``aws`` CLI's 8 MiB parts).

``--client c`` (the default when gcc is there) sends the same pre-built requests
with the compiled client of :mod:`nubis.bench.nativeload` (~30 µs of CPU per
4 KiB request, most of it the kernel's loopback TCP, vs ~60 µs for the Python
client): on 2 cores the client's CPU comes out of what the servers get, and more
from the faster target. ``--client python`` gives the earlier figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nubis.bench import loadgen, nativeload, procstat, refrgw

#: The nubis cloud of ``--reference rgw``: one copy per object, like RGW's size-1 pools.
ONE_REPLICA = """
[cluster.storage_policies.rep1]
index = 0
type = "replication"
replicas = 1
default = true
"""
SIZES = (("4KiB", 4096), ("1MiB", 1 << 20))
MakeRequests = Callable[[str, list[str], list[bytes]], list[loadgen.Request]]


@dataclass(frozen=True)
class Target:
    """One system under test: a label, its port and how to build its requests."""

    label: str
    port: int
    make: MakeRequests
    #: The processes whose CPU time per request is reported (empty: not measured).
    pids: Callable[[], list[int]] = list


def proxy_pids(state: Path) -> list[int]:
    """Return the proxy processes of the cloud in ``state`` (its workers included)."""
    return _daemon_pids(state, ("proxy",))


def storage_pids(state: Path) -> list[int]:
    """Return the object, container and account servers of the cloud in ``state``."""
    return _daemon_pids(state, ("object-server", "container-server", "account-server"))


def _daemon_pids(state: Path, names: tuple[str, ...]) -> list[int]:
    leaders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "daemon" in words and any(n in words for n in names) \
                and any(str(state) in w for w in words):
            leaders.append(int(entry.name))
    return sorted(set(leaders) | set(procstat.group_pids(leaders)))


def _s3_requests(endpoint: str, access: str, secret: str, method: str, bucket: str,
                 names: list[str], bodies: list[bytes]) -> list[loadgen.Request]:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signer = S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1")
    out = []
    for name, body in zip(names, bodies, strict=True):
        data = body if method == "PUT" else b""
        req = AWSRequest(method=method, url=f"{endpoint}/{bucket}/{name}", data=data)
        req.headers["x-amz-content-sha256"] = hashlib.sha256(data).hexdigest()
        signer.add_auth(req)
        headers = tuple((k, v) for k, v in req.headers.items()
                        if k.lower() not in ("host", "content-length"))
        out.append(loadgen.Request(method, urlsplit(req.url).path, headers, data))
    return out


def _swift_requests(path: str, token: str, method: str, names: list[str],
                    bodies: list[bytes]) -> list[loadgen.Request]:
    return [loadgen.Request(method, f"{path}/{n}", (("X-Auth-Token", token),),
                            b if method == "PUT" else b"") for n, b in zip(names, bodies,
                                                                           strict=True)]


def _measure(target: Target, puts: list[loadgen.Request], gets: list[loadgen.Request],
             bodies: list[bytes], concurrency: int, client: nativeload.Client | None = None
             ) -> tuple[loadgen.Result, loadgen.Result, float, float]:
    """Run the PUTs then the GETs; return both results and CPU seconds per op of each.

    ``client``: the compiled client (None: the Python one). The CPU figures are 0
    for a target without ``pids`` (not measured).
    """
    pids = target.pids()
    cpu = [_cpu(pids)]
    if client is not None:
        put = client.run("127.0.0.1", target.port, puts, concurrency, expect=(200, 201))
    else:
        put = loadgen.run_loop(loadgen.run("127.0.0.1", target.port, puts, concurrency,
                                           expect=(200, 201)))
    cpu.append(_cpu(pids))
    if client is not None:
        get = client.run("127.0.0.1", target.port, gets, concurrency, bodies)
    else:
        get = loadgen.run_loop(loadgen.run("127.0.0.1", target.port, gets, concurrency,
                                           loadgen.bytes_verifier(bodies)))
    cpu.append(_cpu(pids))
    _check(put, get)
    return (put, get, (cpu[1] - cpu[0]) / max(put.ok, 1),
            (cpu[2] - cpu[1]) / max(get.ok, 1))


def _check(put: loadgen.Result, get: loadgen.Result) -> None:
    if put.failed or get.failed:
        raise RuntimeError(f"failures: put {put.statuses} get {get.statuses}")


def _cpu(pids: list[int]) -> float:
    return sum(u.cpu for u in procstat.snapshot(pids).values())


def _s3_target(label: str, endpoint: str, access: str, secret: str,
               pids: Callable[[], list[int]] = list) -> Target:
    """Return an S3 target (creates its bucket ``bench``)."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id=access,
                 aws_secret_access_key=secret).create_bucket(Bucket="bench")

    def make(method: str, names: list[str], bodies: list[bytes]) -> list[loadgen.Request]:
        return _s3_requests(endpoint, access, secret, method, "bench", names, bodies)

    port = urlsplit(endpoint).port
    assert port is not None
    return Target(label, port, make, pids)


def _swift_target(cloud: Any) -> Target:
    """Return the Swift API target (the S3 bucket ``bench`` is its container)."""
    import swiftclient
    import yaml

    auth: dict[str, Any] = yaml.safe_load((cloud.state / "clouds.yaml").read_text())[
        "clouds"]["nubis-demo"]["auth"]
    url, token = swiftclient.Connection(
        authurl=auth["auth_url"], user=auth["username"], key=auth["password"],
        auth_version="3", os_options={"project_name": auth["project_name"],
                                      "user_domain_name": "Default",
                                      "project_domain_name": "Default"}).get_auth()
    path = urlsplit(url).path + "/bench"

    def make(method: str, names: list[str], bodies: list[bytes]) -> list[loadgen.Request]:
        return _swift_requests(path, token, method, names, bodies)

    return Target("swift", cloud.config.proxy.port, make, lambda: proxy_pids(cloud.state))


def _rounds(targets: list[Target], small: int, large: int, concurrency: int, rounds: int,
            client: nativeload.Client | None = None) -> dict[str, Any]:
    """Run every size on every target, rounds interleaved; keep each one's best."""
    results: dict[str, Any] = {}
    for label, size, n in ((lbl, sz, small if sz < 65536 else large) for lbl, sz in SIZES):
        bodies = [os.urandom(size) for _ in range(min(n, 64))]
        bodies = [bodies[i % len(bodies)] for i in range(n)]
        best: dict[str, dict[str, float]] = {}
        for r in range(rounds):
            names = [f"{label}-r{r}-{i:06d}" for i in range(n)]
            for t in targets:
                keyed = [f"{t.label}-{x}" for x in names]
                put, get, put_cpu, get_cpu = _measure(
                    t, t.make("PUT", keyed, bodies), t.make("GET", keyed, bodies), bodies,
                    concurrency, client)
                cur = best.setdefault(t.label, {"put_ops": 0.0, "get_ops": 0.0,
                                                 "put_mbps": 0.0, "get_mbps": 0.0,
                                                 "put_cpu_us": float("inf"),
                                                 "get_cpu_us": float("inf")})
                cur["put_cpu_us"] = min(cur["put_cpu_us"], put_cpu * 1e6)
                cur["get_cpu_us"] = min(cur["get_cpu_us"], get_cpu * 1e6)
                cur["put_ops"] = max(cur["put_ops"], put.ops)
                cur["get_ops"] = max(cur["get_ops"], get.ops)
                cur["put_mbps"] = max(cur["put_mbps"], put.mbps)
                cur["get_mbps"] = max(cur["get_mbps"], get.mbps)
        results[label] = {**best, **ratios(best)}
    return results


def ratios(best: dict[str, dict[str, float]]) -> dict[str, float]:
    """Return S3/Swift and (when measured) nubis-S3/RGW ratios of PUT and GET ops/s."""
    out: dict[str, float] = {}
    for other in ("swift", "rgw"):
        if other not in best or "s3" not in best:
            continue
        for op in ("put", "get"):
            theirs = best[other][f"{op}_ops"]
            out[f"s3_over_{other}_{op}"] = best["s3"][f"{op}_ops"] / theirs if theirs else 0.0
    mine, swift = best.get("s3", {}), best.get("swift", {})
    for op in ("put", "get"):
        cpu = f"{op}_cpu_us"
        if 0 < swift.get(cpu, 0) < float("inf") and 0 < mine.get(cpu, 0) < float("inf"):
            out[f"s3_cpu_over_swift_{op}"] = mine[cpu] / swift[cpu]
    return out


def multipart_vs_single(endpoint: str, access: str, secret: str, mib: int, rounds: int,
                        part_mib: int = 8, threads: int = 4,
                        pids: Callable[[], dict[str, list[int]]] = dict) -> dict[str, float]:
    """Upload ``mib`` MiB as one PutObject and as a multipart upload; best MB/s of each.

    The multipart upload is boto3's transfer manager with the ``aws`` CLI's
    defaults (8 MiB parts, here ``threads`` at a time); rounds interleave both.
    Each upload is checked by a HEAD (size, and the ``-N`` ETag of a multipart).
    ``pids`` names process groups (e.g. ``proxy``, ``storage``) whose CPU time
    per MiB uploaded is reported (``<kind>_<group>_cpu_ms_per_mib``, lowest round).
    """
    import time
    from io import BytesIO

    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=access, aws_secret_access_key=secret)
    data = os.urandom(1 << 20) * mib  # distinct MiBs do not matter: nothing dedups
    cfg = TransferConfig(multipart_threshold=part_mib << 20, multipart_chunksize=part_mib << 20,
                         max_concurrency=threads)
    best = {"single_mbps": 0.0, "multipart_mbps": 0.0}
    for r in range(rounds):
        for kind in ("single", "multipart"):
            key = f"big-{kind}-{r}"
            groups = pids()
            cpu0 = {g: _cpu(p) for g, p in groups.items()}
            started = time.perf_counter()
            if kind == "single":
                s3.put_object(Bucket="bench", Key=key, Body=data)
            else:
                s3.upload_fileobj(BytesIO(data), "bench", key, Config=cfg)
            took = time.perf_counter() - started
            for g, p in groups.items():
                name = f"{kind}_{g}_cpu_ms_per_mib"
                per_mib = (_cpu(p) - cpu0[g]) * 1e3 / mib
                best[name] = min(best.get(name, float("inf")), per_mib)
            head = s3.head_object(Bucket="bench", Key=key)
            if head["ContentLength"] != len(data) or (
                    kind == "multipart" and "-" not in head["ETag"]):
                raise RuntimeError(f"{kind} upload stored {head['ContentLength']} bytes")
            s3.delete_object(Bucket="bench", Key=key)
            best[f"{kind}_mbps"] = max(best[f"{kind}_mbps"], len(data) / took / 1e6)
    best["multipart_over_single"] = best["multipart_mbps"] / best["single_mbps"]
    return best


def run_bench(tmp: Path, small: int, large: int, concurrency: int, rounds: int,
              reference: str = "", workers: int = 1, multipart_mib: int = 0,
              frontend: str = "native", storage_nodes: int = 0,
              client: str = "c") -> dict[str, Any]:
    """Run the comparison; return the best ops/s and MB/s per target and size.

    ``storage_nodes``: the cloud's ``[storage] node_count`` (0: the all-in-one's).
    ``client``: ``"c"`` for the compiled load generator (the Python one if gcc
    cannot build it), ``"python"`` for the Python one.
    """
    from tests.functional.proxy.cloud import start_cloud
    from tests.functional.s3.conftest import ec2_credentials

    cloud = start_cloud(tmp / "cloud", proxy_workers=workers, frontend=frontend,
                        extra_config=ONE_REPLICA if reference else "",
                        node_count=storage_nodes or None)
    rgw: refrgw.RgwCluster | None = None
    native = nativeload.Client.build() if client == "c" else None
    try:
        keys = ec2_credentials(cloud, "nubis-demo")
        s3 = _s3_target("s3", cloud.proxy_url, keys.access, keys.secret,  # makes "bench"
                        lambda: proxy_pids(cloud.state))
        targets = [_swift_target(cloud), s3]
        if reference == "rgw":
            rgw = refrgw.start(tmp)
            targets.append(_s3_target("rgw", rgw.endpoint, refrgw.ACCESS, refrgw.SECRET))
        load_before = os.getloadavg()
        results = _rounds(targets, small, large, concurrency, rounds, native)
        results["client"] = "c" if native is not None else "python"
        if multipart_mib:
            results["multipart"] = {"mib": multipart_mib, **multipart_vs_single(
                cloud.proxy_url, keys.access, keys.secret, multipart_mib, rounds,
                pids=lambda: {"proxy": proxy_pids(cloud.state),
                              "storage": storage_pids(cloud.state)})}
        results["load_average"] = {"before": load_before, "after": os.getloadavg()}
        return results
    finally:
        if rgw is not None:
            rgw.stop()
        if native is not None:
            native.close()
        cloud.down()


def main(argv: list[str]) -> int:
    """Run the S3 vs Swift (and optionally vs RGW) benchmark and print a table."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench s3")
    ap.add_argument("--small", type=int, default=2000, help="4 KiB objects per round")
    ap.add_argument("--large", type=int, default=100, help="1 MiB objects per round")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reference", choices=("rgw",), default="",
                    help="also measure Ceph RGW (size-1 pools) vs a one-replica nubis")
    ap.add_argument("--rgw", dest="reference", action="store_const", const="rgw",
                    help="same as --reference rgw")
    ap.add_argument("--workers", type=int, default=0,
                    help="proxy workers (default: 1; 2, as `nubis up`, with --reference)")
    ap.add_argument("--multipart-mib", type=int, default=0,
                    help="also upload this many MiB as one PUT and as a multipart upload "
                         "(the issue's figure: 1024)")
    ap.add_argument("--frontend", choices=("asgi", "native"), default="native",
                    help="the proxy front end ([proxy] frontend)")
    ap.add_argument("--storage-nodes", type=int, default=0,
                    help="storage nodes of the nubis cloud (default: 1 with --reference, "
                         "one object, container and account server as RGW has one OSD; "
                         "else the all-in-one's 4)")
    ap.add_argument("--client", choices=("c", "python"), default="c",
                    help="the load generator: compiled (bench/loadgen.c, built with gcc; "
                         "the Python one without gcc) or Python (bench/loadgen.py)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.reference == "rgw" and (missing := refrgw.missing_binaries()):
        print(f"{refrgw.INSTALL_HINT}\n(missing: {', '.join(missing)})")
        return 2
    with tempfile.TemporaryDirectory(prefix="nubis-bench-s3-") as tmp:
        res = run_bench(Path(tmp), args.small, args.large, args.concurrency, args.rounds,
                        args.reference, args.workers or (2 if args.reference else 1),
                        args.multipart_mib, args.frontend,
                        args.storage_nodes or (1 if args.reference else 0), args.client)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(format_table(res))
    return 0


def format_table(res: dict[str, Any]) -> str:
    """Return the results as a text table with the ratio lines."""
    lines = [f"{'size':6} {'target':7} {'PUT ops/s':>10} {'GET ops/s':>10} {'PUT MB/s':>9} "
             f"{'GET MB/s':>9} {'PUT µs':>9} {'GET µs':>9}"]
    for label, _size in SIZES:
        row = res[label]
        for name in ("swift", "s3", "rgw"):
            if name in row:
                r = row[name]
                cpu = "" if r.get("get_cpu_us", float("inf")) in (float("inf"), 0) else (
                    f" {r['put_cpu_us']:9.0f} {r['get_cpu_us']:9.0f}")
                lines.append(f"{label:6} {name:7} {r['put_ops']:10.0f} {r['get_ops']:10.0f} "
                             f"{r['put_mbps']:9.1f} {r['get_mbps']:9.1f}{cpu}")
        for other in ("swift", "rgw"):
            if f"s3_over_{other}_put" in row:
                lines.append(f"{label:6} s3/{other} PUT {row[f's3_over_{other}_put']:.2f}  "
                             f"GET {row[f's3_over_{other}_get']:.2f}")
        if "s3_cpu_over_swift_get" in row:
            lines.append(f"{label:6} proxy CPU per request s3/swift PUT "
                         f"{row['s3_cpu_over_swift_put']:.2f}  "
                         f"GET {row['s3_cpu_over_swift_get']:.2f}")
    mp = res.get("multipart")
    if mp:
        lines.append(f"{mp['mib']} MiB upload: one PUT {mp['single_mbps']:.1f} MB/s, multipart "
                     f"(8 MiB parts, 4 at a time) {mp['multipart_mbps']:.1f} MB/s "
                     f"({mp['multipart_over_single']:.2f}x)")
        for kind in ("single", "multipart"):
            per_mib = [f"{g} {mp[f'{kind}_{g}_cpu_ms_per_mib']:.1f}"
                       for g in ("proxy", "storage") if f"{kind}_{g}_cpu_ms_per_mib" in mp]
            if per_mib:
                lines.append(f"{mp['mib']} MiB upload, {kind}: CPU ms per MiB "
                             + ", ".join(per_mib))
    if "client" in res:
        lines.append(f"load generator: {res['client']}")
    load = res.get("load_average")
    if load:
        lines.append("load average before {:.1f} {:.1f} {:.1f}, after {:.1f} {:.1f} {:.1f}"
                     .format(*load["before"], *load["after"]))
    return "\n".join(lines)
