"""Browser form uploads (PostObject) from boto3's ``generate_presigned_post``.

The form is POSTed as a browser would (``requests``, multipart/form-data).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud


def _bucket(s3: Any) -> str:
    name = f"post-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _post(form: dict[str, Any], body: bytes, filename: str = "hello.txt",
          **extra: str) -> requests.Response:
    return requests.post(form["url"], data={**form["fields"], **extra},
                         files={"file": (filename, body)}, timeout=30)


def _error(resp: requests.Response) -> tuple[str, str]:
    root = ET.fromstring(resp.content)
    return root.findtext("{*}Code", ""), root.findtext("{*}Message", "")


def _absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


def test_sigv4_form_with_conditions_and_201(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client(signature_version="s3v4")
    b = _bucket(s3)
    form = s3.generate_presigned_post(
        b, "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-color": "blue",
                "success_action_status": "201"},
        Conditions=[{"Content-Type": "text/plain"}, {"x-amz-meta-color": "blue"},
                    {"success_action_status": "201"}, ["content-length-range", 1, 1024]],
        ExpiresIn=300)
    assert "x-amz-signature" in form["fields"]
    resp = _post(form, b"hi there")
    assert resp.status_code == 201, resp.text
    root = ET.fromstring(resp.content)
    assert root.tag.endswith("PostResponse") and root.findtext("{*}Key") == "uploads/hello.txt"
    assert root.findtext("{*}Bucket") == b and resp.headers["ETag"] == root.findtext("{*}ETag")
    got = s3.get_object(Bucket=b, Key="uploads/hello.txt")
    assert got["Body"].read() == b"hi there"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "blue"}
    assert got["ETag"] == resp.headers["ETag"]


def test_default_sigv2_form_answers_204_and_redirects(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3)
    form = s3.generate_presigned_post(b, "plain.bin", ExpiresIn=300)
    assert "AWSAccessKeyId" in form["fields"]  # boto3's default: a SigV2 policy
    resp = _post(form, b"\x00\x01" * 1000)
    assert resp.status_code == 204, resp.text
    assert s3.get_object(Bucket=b, Key="plain.bin")["Body"].read() == b"\x00\x01" * 1000
    hosted = requests.post(f"{s3cloud.endpoint}/", headers={"Host": f"{b}.s3.localhost"},
                           data=form["fields"], files={"file": ("f", b"again")}, timeout=30)
    assert hosted.status_code == 204, hosted.text  # virtual-hosted style
    assert hosted.headers["Location"].endswith(f"{b}.s3.localhost/plain.bin")
    assert s3.get_object(Bucket=b, Key="plain.bin")["Body"].read() == b"again"
    back = "http://example.invalid/done?x=1"
    form = s3.generate_presigned_post(b, "r.txt", Fields={"success_action_redirect": back},
                                      Conditions=[{"success_action_redirect": back}],
                                      ExpiresIn=300)
    resp = requests.post(form["url"], data=form["fields"], files={"file": ("r", b"r")},
                         allow_redirects=False, timeout=30)
    assert resp.status_code == 303
    where = urlsplit(resp.headers["Location"])
    assert where.netloc == "example.invalid"
    query = parse_qs(where.query)
    assert query["x"] == ["1"] and query["bucket"] == [b] and query["key"] == ["r.txt"]
    assert query["etag"] == [s3.head_object(Bucket=b, Key="r.txt")["ETag"]]


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_forms_that_break_their_policy_are_refused(s3cloud: S3Cloud, version: str) -> None:
    s3 = s3cloud.client(signature_version="s3v4")
    signer = s3cloud.client() if version == "s3" else s3
    b = _bucket(s3)
    form = signer.generate_presigned_post(b, "k", Conditions=[
        ["content-length-range", 2, 10]], ExpiresIn=300)
    cases = [
        (_post(form, b"ok", key="other"), 403, "AccessDenied", "Policy Condition failed"),
        (_post(form, b"ok", color="red"), 403, "AccessDenied", "Extra input fields: color"),
        (_post(form, b"x" * 11), 400, "EntityTooLarge", ""),
        (_post(form, b"x"), 400, "EntityTooSmall", ""),
    ]
    sig = "x-amz-signature" if version == "s3v4" else "signature"
    bad = dict(form, fields={**form["fields"], sig: form["fields"][sig][:-4] + "AAAA"})
    cases.append((_post(bad, b"ok"), 403, "SignatureDoesNotMatch", ""))
    for resp, status, code, message in cases:
        assert resp.status_code == status, resp.text
        assert _error(resp)[0] == code and message in _error(resp)[1], resp.text
        assert resp.headers["x-amz-request-id"]
    assert _absent(s3, b, "k") and _absent(s3, b, "other")
    expired = signer.generate_presigned_post(b, "k", ExpiresIn=-60)
    resp = _post(expired, b"ok")
    assert resp.status_code == 403 and _error(resp) == (
        "AccessDenied", "Invalid according to Policy: Policy expired.")
    resp = requests.post(form["url"], data=form["fields"], files={"other": ("f", b"x")},
                         timeout=30)  # no file part
    assert resp.status_code == 400 and _error(resp)[0] == "InvalidArgument", resp.text
    assert _post(form, b"ok").status_code == 204 and _absent(s3, b, "other")
    named = signer.generate_presigned_post(b, "${filename}", ExpiresIn=300)
    resp = _post(named, b"ok", filename="")  # no name for ${filename}: no key
    assert resp.status_code == 400 and _error(resp)[0] == "InvalidArgument", resp.text


def test_a_form_writes_only_where_its_signer_may(s3cloud: S3Cloud) -> None:
    mine = _bucket(s3cloud.client())
    other = s3cloud.client(s3cloud.admin, signature_version="s3v4")
    form = other.generate_presigned_post(mine, "intruder", ExpiresIn=300)
    resp = _post(form, b"x")
    assert resp.status_code == 403 and _error(resp)[0] == "AccessDenied"
    assert _absent(s3cloud.client(), mine, "intruder")
    unsigned = requests.post(f"{s3cloud.endpoint}/{mine}", data={"key": "anon"},
                             files={"file": ("f", b"x")}, timeout=30)
    assert unsigned.status_code == 403 and _error(unsigned)[0] == "AccessDenied"
    assert _absent(s3cloud.client(), mine, "anon")
