"""Keystone's ``/v3/s3tokens`` and ``/v3/ec2tokens``: tokens for SigV4/V2-signed requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

import requests
import yaml
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from nubis.api.shared import awssig

from tests.functional.s3.conftest import S3Cloud


def _v3(s3cloud: S3Cloud) -> str:
    doc = yaml.safe_load((s3cloud.cloud.state / "clouds.yaml").read_text())
    url = str(doc["clouds"]["nubis-demo"]["auth"]["auth_url"]).rstrip("/")
    return url if url.endswith("/v3") else url + "/v3"


def _signed_request(s3cloud: S3Cloud) -> tuple[dict[str, str], str]:
    req = AWSRequest(method="GET", url="http://s3.example:8080/bucket/some%20key?acl=",
                     data=b"")
    req.headers["x-amz-content-sha256"] = hashlib.sha256(b"").hexdigest()
    S3SigV4Auth(Credentials(s3cloud.demo.access, s3cloud.demo.secret), "s3",
                "us-east-1").add_auth(req)
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers["host"] = "s3.example:8080"
    return headers, urlsplit(req.url).query


def test_s3tokens_sigv4_and_v2(s3cloud: S3Cloud) -> None:
    headers, query = _signed_request(s3cloud)
    pairs = awssig.query_pairs(query)
    sreq = awssig.parse_request(headers, pairs)
    canonical = awssig.canonical_request("GET", "/bucket/some%20key", pairs, headers,
                                         sreq.signed_headers, sreq.payload)
    to_sign = awssig.string_to_sign(sreq.amz_date, sreq.scope, canonical)
    body = {"credentials": {"access": s3cloud.demo.access, "signature": sreq.signature,
                            "token": base64.b64encode(to_sign.encode()).decode()}}
    r = requests.post(_v3(s3cloud) + "/s3tokens", json=body, timeout=10)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token["project"]["id"] == s3cloud.demo.project_id
    assert token["methods"] == ["ec2credential"] and r.headers["X-Subject-Token"]
    body["credentials"]["signature"] = "0" * 64
    assert requests.post(_v3(s3cloud) + "/s3tokens", json=body, timeout=10).status_code == 401
    v2 = "GET\n\n\nThu, 01 Jan 2026 00:00:00 GMT\n/bucket/key"
    sig = base64.b64encode(hmac.new(s3cloud.demo.secret.encode(), v2.encode(),
                                    hashlib.sha1).digest()).decode()
    r = requests.post(_v3(s3cloud) + "/s3tokens", json={"credentials": {
        "access": s3cloud.demo.access, "signature": sig,
        "token": base64.b64encode(v2.encode()).decode()}}, timeout=10)
    assert r.status_code == 200, r.text


def test_ec2tokens_from_request_parts(s3cloud: S3Cloud) -> None:
    headers, _ = _signed_request(s3cloud)
    sig = headers["authorization"].rsplit("Signature=", 1)[1]
    creds = {"access": s3cloud.demo.access, "signature": sig, "host": "s3.example:8080",
             "verb": "GET", "path": "/bucket/some%20key", "params": {"acl": ""},
             "headers": headers, "body_hash": headers["x-amz-content-sha256"]}
    r = requests.post(_v3(s3cloud) + "/ec2tokens", json={"credentials": creds}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["token"]["project"]["id"] == s3cloud.demo.project_id
    creds["path"] = "/bucket/other"
    r = requests.post(_v3(s3cloud) + "/ec2tokens", json={"credentials": creds}, timeout=10)
    assert r.status_code == 401
    r = requests.post(_v3(s3cloud) + "/ec2tokens", json={"credentials": {"access": "x"}},
                      timeout=10)
    assert r.status_code == 400
