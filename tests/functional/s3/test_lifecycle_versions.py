"""S3 lifecycle with versions and multipart uploads, applied by the real object expirer.

Time is injected, never waited for: each pass runs ``nubis daemon
object-expirer --once`` per storage node with ``$NUBIS_LIFECYCLE_NOW`` days
ahead, so ``Days`` rules come due at once. Passes are bounded in number.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.functional.s3.conftest import S3Cloud
from tests.functional.s3.test_cors_lifecycle import exists, expirer_pass

DAY = 86400
LATER = time.time() + 3 * DAY
MIB = 1024 * 1024
#: Each expirer pass starts a process per storage node: seconds on a loaded machine.
pytestmark = pytest.mark.timeout(900)


def _bucket(s3: Any, prefix: str, versioning: str | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
    return name


def _versions(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, str, bool, bool]]:
    """Return (key, version id, is latest, is delete marker) of every version."""
    got = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    rows = [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in got.get("Versions", [])]
    rows += [(m["Key"], m["VersionId"], m["IsLatest"], True)
             for m in got.get("DeleteMarkers", [])]
    return sorted(rows)


def _passes_until(s3cloud: S3Cloud, done: Callable[[], bool], now: float = LATER,
                  limit: int = 4) -> None:
    """Run expirer passes (at most ``limit``) until ``done()``; assert it then holds."""
    for _ in range(limit):
        expirer_pass(s3cloud, now)
        if done():
            return
    assert done()


def _rules(s3: Any, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": list(rules)})


def test_expiration_in_an_enabled_bucket_writes_a_delete_marker(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "lcver", "Enabled")
    v1 = s3.put_object(Bucket=b, Key="exp/a", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="exp/a", Body=b"two")["VersionId"]
    kept = s3.put_object(Bucket=b, Key="keep/b", Body=b"kept")["VersionId"]
    _rules(s3, b, {"ID": "cur", "Filter": {"Prefix": "exp/"}, "Status": "Enabled",
                   "Expiration": {"Days": 1}})
    expirer_pass(s3cloud)  # today: nothing is a day old yet
    assert exists(s3, b, "exp/a")

    def marked() -> bool:
        return any(m and latest for _, _, latest, m in _versions(s3, b, "exp/"))

    _passes_until(s3cloud, marked)
    rows = _versions(s3, b, "exp/")
    assert ("exp/a", v1, False, False) in rows and ("exp/a", v2, False, False) in rows
    assert len(rows) == 3  # one delete marker on top (once), the data kept as noncurrent
    assert not exists(s3, b, "exp/a")
    assert s3.get_object(Bucket=b, Key="exp/a", VersionId=v2)["Body"].read() == b"two"
    assert _versions(s3, b, "keep/") == [("keep/b", kept, True, False)]

    # Noncurrent versions go NoncurrentDays after they stopped being current (a
    # multipart one with its parts); then the lone delete marker goes too.
    uid = s3.create_multipart_upload(Bucket=b, Key="exp/m")["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="exp/m", UploadId=uid, PartNumber=1,
                          Body=b"m")["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="exp/m", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    s3.delete_object(Bucket=b, Key="exp/m")  # noncurrent now, behind a delete marker
    assert s3cloud.segments(b) == [f"exp/m/{uid}/00001"]
    s3.put_object(Bucket=b, Key="keep/b", Body=b"newer")
    _rules(s3, b, {"ID": "nc", "Filter": {"Prefix": "exp/"}, "Status": "Enabled",
                   "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
           {"ID": "markers", "Filter": {"Prefix": "exp/"}, "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True}})
    got = s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]
    assert got[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert got[1]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    _passes_until(s3cloud, lambda: _versions(s3, b, "exp/") == [])
    assert len(_versions(s3, b, "keep/")) == 2  # other prefixes untouched
    assert s3cloud.segments(b) == []


def test_expiration_in_a_suspended_bucket_removes_the_null_version(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "lcsus", "Enabled")
    v1 = s3.put_object(Bucket=b, Key="exp/n", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=b, Key="exp/n", Body=b"null")
    _rules(s3, b, {"ID": "cur", "Filter": {"Prefix": "exp/"}, "Status": "Enabled",
                   "Expiration": {"Days": 1}})
    _passes_until(s3cloud, lambda: not exists(s3, b, "exp/n"))
    assert [v for _, v, _, _ in _versions(s3, b)] == [v1]  # the versioned data stays
    assert s3.get_object(Bucket=b, Key="exp/n", VersionId=v1)["Body"].read() == b"versioned"


def test_incomplete_uploads_are_aborted_and_multipart_segments_expire(
        s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = _bucket(s3, "lcmp")
    pending = s3.create_multipart_upload(Bucket=b, Key="mp/pending")["UploadId"]
    s3.upload_part(Bucket=b, Key="mp/pending", UploadId=pending, PartNumber=1, Body=b"p" * 10)
    other = s3.create_multipart_upload(Bucket=b, Key="other/pending")["UploadId"]
    done = s3.create_multipart_upload(Bucket=b, Key="mp/done")["UploadId"]
    parts = []
    for number, body in ((1, b"a" * 5 * MIB), (2, b"b" * 10)):
        etag = s3.upload_part(Bucket=b, Key="mp/done", UploadId=done, PartNumber=number,
                              Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=b, Key="mp/done", UploadId=done,
                                 MultipartUpload={"Parts": parts})
    assert len(s3cloud.segments(b)) == 5  # 2 upload markers, 3 parts
    _rules(s3, b, {"ID": "mp", "Filter": {"Prefix": "mp/"}, "Status": "Enabled",
                   "Expiration": {"Days": 1},
                   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}})

    def uploads() -> list[str]:
        return [u["Key"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])]

    expirer_pass(s3cloud)  # today: nothing is due
    assert uploads() == ["mp/pending", "other/pending"] and exists(s3, b, "mp/done")
    _passes_until(s3cloud, lambda: uploads() == ["other/pending"]
                  and not exists(s3, b, "mp/done"))
    assert s3cloud.segments(b) == [f"other/pending/{other}"]  # parts and segments gone
