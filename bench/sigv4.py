"""SigV4 benchmark: checking one request's signature, nubis vs Swift's s3api, same requests.

``python -m nubis.bench sigv4 [--n N] [--rounds R] [--no-swift]``

Every S3 request the proxy answers starts with this check. Two requests are
signed by botocore's signer (as boto3 sends them): a GetObject (three signed
headers) and a 4 KiB PutObject with a content type, a Content-MD5 and three
``x-amz-meta-*`` headers (eight). For each, best of ``--rounds`` runs of
``--n`` checks, microseconds per check:

- ``nubis``: :func:`nubis.api.proxy.s3.auth.authenticate` (parse, clock, key
  lookup from an in-memory source, canonical request and signature through the
  compiled ``fastpath.sigv4`` kernel, identity), in this process;
- ``nubis-pure``: the same with ``NUBIS_NO_EXTENSIONS=1`` (the kernel's hashlib
  twin), in a child process;
- ``swift``: Swift 2.38.3's s3api, ``SigV4Request(environ)`` and its
  ``sig_checker.check_signature(secret)`` (parse, clock, canonical request,
  signature), in the reference venv of :mod:`nubis.bench.refswift`;
- ``kernel`` / ``kernel-pure``: ``fastpath.sigv4.request_signature`` alone.

Every check must accept the signature (a rejected one fails the run).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from nubis.bench import refswift

SECRET = "bench-secret-key"
ACCESS = "BENCHACCESSKEY"
HOST = "127.0.0.1:8080"

#: Swift's check, run in the reference venv: argv[1] is the JSON of one request.
SWIFT_CHECK = """
import io, json, sys, time
from swift.common.middleware.s3api.s3request import SigV4Request
from swift.common.middleware.s3api.utils import Config
spec = json.loads(sys.argv[1])
conf = Config({"location": "us-east-1", "storage_domains": [],
               "dns_compliant_bucket_names": True, "allow_multipart_uploads": True,
               "max_upload_part_num": 1000, "check_bucket_owner": False, "s3_acl": False})
def environ():
    env = {"REQUEST_METHOD": spec["method"], "PATH_INFO": spec["path"], "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "wsgi.url_scheme": "http",
           "wsgi.input": io.BytesIO(b"")}  # the body is not read: the check is all we time
    for k, v in spec["headers"].items():
        key = k.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = v
    return env
def check():
    if not SigV4Request(environ(), conf=conf).sig_checker.check_signature(spec["secret"]):
        raise SystemExit("swift rejected the signature")
best = float("inf")
for _ in range(spec["rounds"]):
    t0 = time.perf_counter()
    for _ in range(spec["n"]):
        check()
    best = min(best, (time.perf_counter() - t0) / spec["n"])
print(json.dumps({"us": best * 1e6}))
"""


def signed_requests() -> dict[str, dict[str, Any]]:
    """Return the benchmark's requests, signed now by botocore (lower-case headers)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = bytes(range(256)) * 16
    signer = S3SigV4Auth(Credentials(ACCESS, SECRET), "s3", "us-east-1")
    out: dict[str, dict[str, Any]] = {}
    for name, method, data, extra in (
            ("GET", "GET", b"", {}),
            ("PUT 4KiB", "PUT", body, {
                "Content-Type": "application/octet-stream",
                "Content-MD5": "BQ/EsoP9BjoEH3y6FbA6DQ==",
                "x-amz-meta-color": "blue", "x-amz-meta-owner": "bench",
                "x-amz-meta-note": "one  two"})):
        req = AWSRequest(method=method, url=f"http://{HOST}/bench/object-1", data=data)
        for k, v in extra.items():
            req.headers[k] = v
        req.headers["x-amz-content-sha256"] = hashlib.sha256(data).hexdigest()
        signer.add_auth(req)
        headers = {k.lower(): v for k, v in req.headers.items()}
        headers["host"] = HOST
        if data:
            headers["content-length"] = str(len(data))
        out[name] = {"method": method, "path": "/bench/object-1", "headers": headers}
    return out


def _best(func: Callable[[], object], n: int, rounds: int) -> float:
    """Return the best microseconds per call of ``func`` over ``rounds`` runs of ``n``."""
    func()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            func()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def measure_here(requests: dict[str, dict[str, Any]], n: int, rounds: int
                 ) -> dict[str, dict[str, float]]:
    """Time nubis's whole check and the kernel alone in this process."""
    from nubis.api.proxy.s3 import auth
    from nubis.api.shared import awssig
    from nubis.fastpath import sigv4

    cred = awssig.S3Credential(ACCESS, SECRET, "user", "project", frozenset({"member"}))

    class Source:
        def lookup(self, access: str) -> awssig.S3Credential | None:
            return cred if access == ACCESS else None

    source, now = Source(), time.time()
    out: dict[str, dict[str, float]] = {}
    for name, spec in requests.items():
        method, path, headers = spec["method"], spec["path"], spec["headers"]
        check = functools.partial(auth.authenticate, source, method, path, "", headers,
                                  "AUTH_", now)
        sreq = awssig.parse_request(headers, [])
        key = awssig.signing_key(SECRET, sreq.date, sreq.region, sreq.service)
        kernel = functools.partial(sigv4.request_signature, sigv4.key_state(key), method,
                                   path, "", headers, sreq.signed_headers, sreq.payload,
                                   sreq.amz_date, sreq.scope)
        if kernel() != sreq.signature:
            raise RuntimeError(f"{name}: the kernel's signature differs from botocore's")
        out[name] = {"check": _best(check, n, rounds), "kernel": _best(kernel, n, rounds)}
    return out


def _child(requests: dict[str, dict[str, Any]], n: int, rounds: int
           ) -> dict[str, dict[str, float]]:
    """Run :func:`measure_here` with the pure-Python twins (a child process)."""
    env = dict(os.environ, NUBIS_NO_EXTENSIONS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "nubis.bench", "sigv4", "--child", json.dumps(requests),
         "--n", str(n), "--rounds", str(rounds)], env=env, capture_output=True, text=True,
        check=True, timeout=600)
    result: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _swift(requests: dict[str, dict[str, Any]], n: int, rounds: int) -> dict[str, float]:
    """Time Swift's s3api check of each request in the reference venv."""
    venv = refswift.ensure_swift_venv()
    out: dict[str, float] = {}
    for name, spec in requests.items():
        arg = json.dumps({**spec, "secret": SECRET, "n": n, "rounds": rounds})
        proc = subprocess.run([str(refswift.swift_python(venv)), "-c",
                               refswift.SWIFT_HASH_SETUP + SWIFT_CHECK, arg],
                              capture_output=True, text=True, check=False, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"swift's check of {name} failed: {proc.stderr[-800:]}")
        out[name] = float(json.loads(proc.stdout.strip().splitlines()[-1])["us"])
    return out


def main(argv: list[str]) -> int:
    """Run the comparison and print microseconds per check with the ratios."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench sigv4")
    ap.add_argument("--n", type=int, default=20000, help="checks per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-swift", action="store_true", help="skip Swift's s3api")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(json.loads(args.child), args.n, args.rounds)))
        return 0
    requests = signed_requests()
    here = measure_here(requests, args.n, args.rounds)
    pure = _child(requests, args.n, args.rounds)
    swift = {} if args.no_swift else _swift(requests, max(1, args.n // 20), args.rounds)
    print(f"{'request':10} {'nubis':>9} {'pure':>9} {'swift':>9} {'kernel':>9} "
          f"{'k-pure':>9}   swift/nubis  pure/nubis  kernel-pure/kernel")
    for name in requests:
        sw, mine, twin = swift.get(name, 0.0), here[name], pure[name]
        print(f"{name:10} {mine['check']:8.2f}µ {twin['check']:8.2f}µ "
              f"{sw:8.1f}µ {mine['kernel']:8.2f}µ {twin['kernel']:8.2f}µ   "
              f"{sw / mine['check']:11.1f}x {twin['check'] / mine['check']:10.2f}x "
              f"{twin['kernel'] / mine['kernel']:17.2f}x")
    return 0
