"""Bucket CORS (configuration, preflight, answer headers) and lifecycle expiration via boto3.

Lifecycle rules are proven end to end: a rule dated in the past, one pass of
``nubis daemon object-expirer --once`` per storage node, and the matching
objects are gone while the others stay.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.proxy.cloud import expirer_pass as cloud_expirer_pass
from tests.functional.s3.conftest import S3Cloud
from tests.functional.s3.test_cli_and_edges import _code as _raw_code
from tests.functional.s3.test_cli_and_edges import _raw

ORIGIN = "https://app.example.com"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _bucket(s3: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _rule(**extra: Any) -> dict[str, Any]:
    return {"AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"],
            **extra}


def test_bucket_cors_round_trip(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "cors")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=b)
    assert _code(exc) == "NoSuchCORSConfiguration"
    rules = [_rule(ID="web", AllowedHeaders=["x-amz-*", "content-type"],
                   ExposeHeaders=["ETag", "x-amz-request-id"], MaxAgeSeconds=600),
             {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]}]
    s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=b)["CORSRules"] == rules
    s3.delete_bucket_cors(Bucket=b)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=b)
    assert _code(exc) == "NoSuchCORSConfiguration"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=f"nope-{uuid.uuid4().hex[:10]}")
    assert _code(exc) == "NoSuchBucket"


def test_bucket_cors_bad_input(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "corsbad")
    for bad, code in (({"AllowedMethods": ["PATCH"]}, "InvalidRequest"),
                      ({"AllowedOrigins": ["https://*.*.example.com"]}, "InvalidRequest"),
                      ({"AllowedHeaders": ["x-*-*"]}, "InvalidRequest")):
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [_rule(**bad)]})
        assert _code(exc) == code, bad
    for body in (b"<CORSConfiguration/>", b"<CORSConfiguration><CORSRule>"
                 b"<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
                 b"<CORSConfiguration><CORSRule>", b"<Nope/>"):
        r = _raw(s3cloud, "PUT", f"/{b}?cors", body)
        assert r.status_code == 400 and _raw_code(r) == "MalformedXML", body
    good = b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>" \
        b"GET</AllowedMethod></CORSRule></CORSConfiguration>"
    r = _raw(s3cloud, "PUT", f"/{b}?cors", good, {"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert r.status_code == 400 and _raw_code(r) == "BadDigest"
    r = _raw(s3cloud, "PUT", f"/{b}?cors", good, {"Content-MD5": "nope"})
    assert r.status_code == 400 and _raw_code(r) == "InvalidDigest"
    with pytest.raises(ClientError) as exc:
        s3cloud.client(s3cloud.admin).put_bucket_cors(
            Bucket=b, CORSConfiguration={"CORSRules": [_rule()]})
    assert _code(exc) == "AccessDenied"  # another project's bucket


def _preflight(s3cloud: S3Cloud, path: str, **headers: str) -> requests.Response:
    return requests.options(s3cloud.endpoint + path, headers=headers, timeout=10)


def test_preflight_and_actual_request_headers(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "pre")
    s3.put_object(Bucket=b, Key="k", Body=b"hello")
    r = _preflight(s3cloud, f"/{b}/k", Origin=ORIGIN, **{"Access-Control-Request-Method": "GET"})
    assert r.status_code == 403 and _raw_code(r) == "AccessForbidden"  # CORS not enabled
    s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": [
        _rule(AllowedHeaders=["x-amz-*"], ExposeHeaders=["ETag"], MaxAgeSeconds=300),
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]}]})
    r = _preflight(s3cloud, f"/{b}/k", Origin=ORIGIN, **{
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "X-Amz-Meta-A, x-amz-date"})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "x-amz-meta-a, x-amz-date"
    assert r.headers["Access-Control-Max-Age"] == "300"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = _preflight(s3cloud, f"/{b}/k", Origin="https://elsewhere.test",
                   **{"Access-Control-Request-Method": "HEAD"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    for origin, method, hdrs in ((ORIGIN, "DELETE", ""), ("https://example.org", "GET", ""),
                                 (ORIGIN, "GET", "authorization")):
        r = _preflight(s3cloud, f"/{b}/k", Origin=origin, **{
            "Access-Control-Request-Method": method, "Access-Control-Request-Headers": hdrs})
        assert r.status_code == 403 and _raw_code(r) == "AccessForbidden", (origin, method)
    r = _preflight(s3cloud, f"/{b}/k", **{"Access-Control-Request-Method": "GET"})
    assert r.status_code == 400 and _raw_code(r) == "BadRequest"
    r = _preflight(s3cloud, f"/{b}/k", Origin=ORIGIN)
    assert r.status_code == 400 and _raw_code(r) == "BadRequest"
    r = _preflight(s3cloud, f"/nope-{uuid.uuid4().hex[:10]}/k", Origin=ORIGIN,
                   **{"Access-Control-Request-Method": "GET"})
    assert r.status_code == 404 and _raw_code(r) == "NoSuchBucket"
    r = requests.options(s3cloud.endpoint + "/k", timeout=10, headers={
        "Host": f"{b}.s3.localhost", "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = requests.options(s3cloud.endpoint + "/v1/AUTH_x/c", timeout=10)  # still Swift's
    assert r.status_code == 200 and "Allow" in r.headers and "<Error>" not in r.text
    # Actual (signed) requests with an Origin get the matching rule's headers.
    r = _raw(s3cloud, "GET", f"/{b}/k", headers={"Origin": ORIGIN})
    assert r.status_code == 200 and r.content == b"hello"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    r = _raw(s3cloud, "GET", f"/{b}/missing", headers={"Origin": ORIGIN})
    assert r.status_code == 404 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = _raw(s3cloud, "DELETE", f"/{b}/k", headers={"Origin": ORIGIN})
    assert r.status_code == 204 and "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Allow-Origin" not in _raw(s3cloud, "GET", f"/{b}/k").headers


def test_lifecycle_configuration_round_trip(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "lc")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=b)
    assert _code(exc) == "NoSuchLifecycleConfiguration"
    rules = [
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Days": 30}},
        {"ID": "tagged", "Status": "Disabled",
         "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "t", "Value": "1"}]}},
         "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)}},
        {"ID": "one-tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "a", "Value": "b"}},
         "Expiration": {"Days": 1}}]
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    assert got == rules
    s3.delete_bucket_lifecycle(Bucket=b)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_lifecycle_configuration(Bucket=b)
    assert _code(exc) == "NoSuchLifecycleConfiguration"


def test_lifecycle_bad_input(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "lcbad")
    noon = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.UTC)
    base = {"ID": "r", "Filter": {"Prefix": ""}, "Status": "Enabled"}
    for bad, code in (({"Expiration": {"Days": 0}}, "InvalidArgument"),
                      ({"Expiration": {"Date": noon}}, "InvalidArgument"),
                      ({}, "InvalidRequest"),
                      ({"Status": "Maybe", "Expiration": {"Days": 1}}, "MalformedXML"),
                      ({"ID": "x" * 256, "Expiration": {"Days": 1}}, "InvalidArgument"),
                      ({"Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]},
                       "NotImplemented")):
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_lifecycle_configuration(
                Bucket=b, LifecycleConfiguration={"Rules": [{**base, **bad}]})
        assert _code(exc) == code, bad
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
            {**base, "Expiration": {"Days": 1}}, {**base, "Expiration": {"Days": 2}}]})
    assert _code(exc) == "InvalidArgument"  # duplicate rule IDs
    r = _raw(s3cloud, "PUT", f"/{b}?lifecycle", b"<LifecycleConfiguration><Rule><ID>a</ID>"
             b"<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
             b"</LifecycleConfiguration>")
    assert r.status_code == 400 and _raw_code(r) == "MalformedXML"  # neither Filter nor Prefix


def expirer_pass(s3cloud: S3Cloud, now: float | None = None) -> None:
    """Run one pass of the object expirer on every storage node of the cloud (in parallel).

    ``now``: the moment lifecycle rules are judged at (``$NUBIS_LIFECYCLE_NOW``).
    """
    cloud_expirer_pass(s3cloud.cloud, now)


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False
    return True


def test_lifecycle_expiration_by_the_expirer(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "lcexp")
    for key in ("logs/a", "logs/b", "keep/c", "tmp/d", "tmp/e", "young/f"):
        s3.put_object(Bucket=b, Key=key, Body=b"x" * 10)
    s3.put_object_tagging(Bucket=b, Key="tmp/d", Tagging={"TagSet": [
        {"Key": "gone", "Value": "yes"}]})
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Date": past}},
        {"ID": "tagged", "Status": "Enabled", "Expiration": {"Date": past},
         "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "gone", "Value": "yes"}]}}},
        {"ID": "off", "Filter": {"Prefix": "keep/"}, "Status": "Disabled",
         "Expiration": {"Date": past}},
        {"ID": "later", "Filter": {"Prefix": "young/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}}]})
    gone = {"logs/a", "logs/b", "tmp/d"}
    for _ in range(3):  # a pass walks a bounded slice; a few cover this small cloud
        expirer_pass(s3cloud)
        if not any(exists(s3, b, k) for k in gone):
            break
    assert [k for k in sorted(gone) if exists(s3, b, k)] == []
    for key in ("keep/c", "tmp/e", "young/f"):
        assert exists(s3, b, key), key
        assert s3.get_object(Bucket=b, Key=key)["Body"].read() == b"x" * 10
