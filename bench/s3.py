"""S3 benchmark: PUT/GET through the S3 API vs the Swift API on the same nubis, same run.

``python -m nubis.bench s3 [--small N] [--large N] [--concurrency C] [--rounds R]``

A whole cloud from ``nubis up``; EC2 credentials from ``openstack ec2
credentials create``; a Keystone token for the same project. The raw load
generator (:mod:`nubis.bench.loadgen`) sends 4 KiB and 1 MiB PUTs then GETs
over keep-alive connections: Swift requests carry ``X-Auth-Token``, S3 requests
are SigV4 header-signed by botocore's signer (payload SHA-256 included, signed
before the clock starts). Rounds interleave Swift and S3 to cancel drift; the
best round of each is reported, with the S3/Swift ratio (target: SigV4 costs
at most 15 %, i.e. ratio >= 0.85).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nubis.bench import loadgen


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


def _measure(port: int, puts: list[loadgen.Request], gets: list[loadgen.Request],
             bodies: list[bytes], concurrency: int) -> tuple[loadgen.Result, loadgen.Result]:
    put = loadgen.run_loop(loadgen.run("127.0.0.1", port, puts, concurrency,
                                       expect=(200, 201)))
    get = loadgen.run_loop(loadgen.run("127.0.0.1", port, gets, concurrency,
                                       loadgen.bytes_verifier(bodies)))
    if put.failed or get.failed:
        raise RuntimeError(f"failures: put {put.statuses} get {get.statuses}")
    return put, get


def run_bench(tmp: Path, small: int, large: int, concurrency: int, rounds: int
              ) -> dict[str, Any]:
    """Run the comparison; return the best ops/s and MB/s per API and size."""
    import boto3
    import swiftclient
    import yaml

    from tests.functional.proxy.cloud import start_cloud
    from tests.functional.s3.conftest import ec2_credentials

    cloud = start_cloud(tmp / "cloud")
    try:
        keys = ec2_credentials(cloud, "nubis-demo")
        auth: dict[str, Any] = yaml.safe_load((cloud.state / "clouds.yaml").read_text())[
            "clouds"]["nubis-demo"]["auth"]
        url, token = swiftclient.Connection(
            authurl=auth["auth_url"], user=auth["username"], key=auth["password"],
            auth_version="3", os_options={"project_name": auth["project_name"],
                                          "user_domain_name": "Default",
                                          "project_domain_name": "Default"}).get_auth()
        endpoint = cloud.proxy_url
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=keys.access,
                     aws_secret_access_key=keys.secret).create_bucket(Bucket="bench")
        swift_path = urlsplit(url).path + "/bench"
        port = cloud.config.proxy.port
        results: dict[str, Any] = {}
        for label, size, n in (("4KiB", 4096, small), ("1MiB", 1 << 20, large)):
            bodies = [os.urandom(size) for _ in range(min(n, 64))]
            bodies = [bodies[i % len(bodies)] for i in range(n)]
            best: dict[str, dict[str, float]] = {}
            for r in range(rounds):
                names = [f"{label}-r{r}-{i:06d}" for i in range(n)]
                for api in ("swift", "s3"):
                    keyed = [f"{api}-{x}" for x in names]
                    if api == "s3":
                        puts = _s3_requests(endpoint, keys.access, keys.secret, "PUT",
                                            "bench", keyed, bodies)
                        gets = _s3_requests(endpoint, keys.access, keys.secret, "GET",
                                            "bench", keyed, bodies)
                    else:
                        puts = _swift_requests(swift_path, token, "PUT", keyed, bodies)
                        gets = _swift_requests(swift_path, token, "GET", keyed, bodies)
                    put, get = _measure(port, puts, gets, bodies, concurrency)
                    cur = best.setdefault(api, {"put_ops": 0.0, "get_ops": 0.0,
                                                "put_mbps": 0.0, "get_mbps": 0.0})
                    cur["put_ops"] = max(cur["put_ops"], put.ops)
                    cur["get_ops"] = max(cur["get_ops"], get.ops)
                    cur["put_mbps"] = max(cur["put_mbps"], put.mbps)
                    cur["get_mbps"] = max(cur["get_mbps"], get.mbps)
            results[label] = {**best, "s3_over_swift_put": best["s3"]["put_ops"] /
                              best["swift"]["put_ops"],
                              "s3_over_swift_get": best["s3"]["get_ops"] /
                              best["swift"]["get_ops"]}
        return results
    finally:
        cloud.down()


def main(argv: list[str]) -> int:
    """Run the S3 vs Swift benchmark and print a table."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench s3")
    ap.add_argument("--small", type=int, default=2000, help="4 KiB objects per round")
    ap.add_argument("--large", type=int, default=100, help="1 MiB objects per round")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nubis-bench-s3-") as tmp:
        res = run_bench(Path(tmp), args.small, args.large, args.concurrency, args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'size':6} {'api':6} {'PUT ops/s':>10} {'GET ops/s':>10} {'PUT MB/s':>9} "
          f"{'GET MB/s':>9}")
    for label, row in res.items():
        for api in ("swift", "s3"):
            r = row[api]
            print(f"{label:6} {api:6} {r['put_ops']:10.0f} {r['get_ops']:10.0f} "
                  f"{r['put_mbps']:9.1f} {r['get_mbps']:9.1f}")
        print(f"{label:6} s3/swift PUT {row['s3_over_swift_put']:.2f}  "
              f"GET {row['s3_over_swift_get']:.2f}")
    return 0
