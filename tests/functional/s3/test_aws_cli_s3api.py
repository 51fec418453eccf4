"""Every S3 operation of nubis through the real ``aws s3api`` CLI (answers and exact errors).

The other files drive most operations through boto3; here each one is an
``aws s3api`` command (``--output json`` parsed), error cases included: the
CLI must exit non-zero and name S3's error code on stderr, e.g.
``An error occurred (NoSuchKey) when calling the GetObject operation``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import requests

from tests.functional.s3.conftest import Keys, S3Cloud

MIB = 1024 * 1024
ORIGIN = "https://app.example.com"


def _api(s3cloud: S3Cloud, *args: str) -> dict[str, Any]:
    """Run ``aws s3api ARGS --output json``; return its JSON answer ({} when it printed none)."""
    out = s3cloud.aws("s3api", *args, "--output", "json").stdout
    return json.loads(out) if out.strip() else {}


def _fails(s3cloud: S3Cloud, code: str, *args: str, keys: Keys | None = None) -> str:
    """Run ``aws s3api ARGS``; assert it fails naming S3 error ``code``; return stderr."""
    proc = s3cloud.aws("s3api", *args, keys=keys, check=False)
    assert proc.returncode != 0, (args, proc.stdout)
    assert f"({code})" in proc.stderr, (args, proc.stderr)
    return proc.stderr


def _bucket(s3cloud: S3Cloud, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    assert _api(s3cloud, "create-bucket", "--bucket", name)["Location"] == f"/{name}"
    return name


def _file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _json_file(tmp_path: Path, name: str, doc: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return f"file://{path}"


def test_bucket_create_location_list_delete(s3cloud: S3Cloud, tmp_path: Path) -> None:
    """create-bucket, get-bucket-location, list-buckets, delete-bucket (+ their errors)."""
    b = _bucket(s3cloud, "cli-b")
    _fails(s3cloud, "BucketAlreadyOwnedByYou", "create-bucket", "--bucket", b)
    _fails(s3cloud, "BucketAlreadyExists", "create-bucket", "--bucket", b, keys=s3cloud.admin)
    _fails(s3cloud, "InvalidBucketName", "create-bucket", "--bucket", "Bad_Name")
    # us-east-1 is S3's empty LocationConstraint (botocore turns it into null)
    assert _api(s3cloud, "get-bucket-location", "--bucket", b)["LocationConstraint"] is None
    listed = _api(s3cloud, "list-buckets")
    assert b in [x["Name"] for x in listed["Buckets"]]
    assert listed["Owner"]["ID"] == s3cloud.demo.project_id
    assert all(x["CreationDate"] for x in listed["Buckets"])
    assert not any(x["Name"].endswith("+segments") for x in listed["Buckets"])
    _api(s3cloud, "put-object", "--bucket", b, "--key", "k", "--body",
         _file(tmp_path, "k", b"x"))
    _fails(s3cloud, "BucketNotEmpty", "delete-bucket", "--bucket", b)
    _api(s3cloud, "delete-object", "--bucket", b, "--key", "k")
    assert _api(s3cloud, "delete-bucket", "--bucket", b) == {}
    assert b not in [x["Name"] for x in _api(s3cloud, "list-buckets")["Buckets"]]
    _fails(s3cloud, "NoSuchBucket", "get-bucket-location", "--bucket", b)
    _fails(s3cloud, "NoSuchBucket", "delete-bucket", "--bucket", b)


def test_put_get_object_headers_ranges_and_conditions(s3cloud: S3Cloud, tmp_path: Path
                                                      ) -> None:
    """put-object with metadata/headers; get-object ranges, conditions, overrides."""
    b = _bucket(s3cloud, "cli-o")
    data = b"0123456789abcdef"
    put = _api(s3cloud, "put-object", "--bucket", b, "--key", "doc.txt", "--body",
               _file(tmp_path, "doc", data), "--metadata", "color=blue,Team=ops",
               "--content-type", "text/x-doc", "--cache-control", "max-age=60",
               "--content-disposition", 'attachment; filename="d.txt"',
               "--expires", "2030-01-02T03:04:05Z")
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(data).hexdigest()}"'
    out = tmp_path / "out"
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "doc.txt", str(out))
    assert out.read_bytes() == data
    assert got["ETag"] == etag and got["ContentLength"] == len(data)
    assert got["Metadata"] == {"color": "blue", "team": "ops"}
    assert got["ContentType"] == "text/x-doc" and got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == 'attachment; filename="d.txt"'
    expires = got.get("ExpiresString") or got["Expires"]  # newer botocore: ExpiresString
    assert "2030" in expires and ("03:04:05" in expires), got
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "doc.txt", "--range",
               "bytes=2-5", str(out))
    assert out.read_bytes() == b"2345"
    assert got["ContentRange"] == f"bytes 2-5/{len(data)}" and got["ContentLength"] == 4
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "doc.txt", "--range",
               "bytes=-3", str(out))
    assert out.read_bytes() == b"def"
    _fails(s3cloud, "InvalidRange", "get-object", "--bucket", b, "--key", "doc.txt",
           "--range", "bytes=100-200", str(out))
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "doc.txt", "--if-match", etag,
               "--response-content-type", "application/x-override",
               "--response-cache-control", "no-cache", str(out))
    assert got["ContentType"] == "application/x-override"
    assert got["CacheControl"] == "no-cache" and out.read_bytes() == data
    _fails(s3cloud, "PreconditionFailed", "get-object", "--bucket", b, "--key", "doc.txt",
           "--if-match", '"0123456789abcdef0123456789abcdef"', str(out))
    # 304 carries no body: botocore names the status as the code
    _fails(s3cloud, "304", "get-object", "--bucket", b, "--key", "doc.txt",
           "--if-none-match", etag, str(out))
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "doc.txt", "--if-none-match",
               '"0123456789abcdef0123456789abcdef"', str(out))
    assert got["ETag"] == etag
    _fails(s3cloud, "PreconditionFailed", "get-object", "--bucket", b, "--key", "doc.txt",
           "--if-unmodified-since", "2001-01-01T00:00:00Z", str(out))
    _fails(s3cloud, "NoSuchKey", "get-object", "--bucket", b, "--key", "missing", str(out))
    _fails(s3cloud, "NoSuchBucket", "get-object", "--bucket", f"nope-{uuid.uuid4().hex}",
           "--key", "k", str(out))
    # get-object-acl / put-object-acl: canned only (objects share their bucket's grants)
    acl = _api(s3cloud, "get-object-acl", "--bucket", b, "--key", "doc.txt")
    assert acl["Owner"]["ID"] == s3cloud.demo.project_id
    assert acl["Grants"] == [{"Grantee": {"ID": s3cloud.demo.project_id,
                                          "DisplayName": s3cloud.demo.project_id,
                                          "Type": "CanonicalUser"},
                              "Permission": "FULL_CONTROL"}]
    assert _api(s3cloud, "put-object-acl", "--bucket", b, "--key", "doc.txt", "--acl",
                "private") == {}
    assert _api(s3cloud, "put-object-acl", "--bucket", b, "--key", "doc.txt", "--acl",
                "bucket-owner-full-control") == {}
    # nubis: a public canned ACL goes on the bucket, not on one object (see README)
    _fails(s3cloud, "NotImplemented", "put-object-acl", "--bucket", b, "--key", "doc.txt",
           "--acl", "public-read")
    _fails(s3cloud, "NoSuchKey", "get-object-acl", "--bucket", b, "--key", "missing")


def test_versioning_delete_markers_and_copy(s3cloud: S3Cloud, tmp_path: Path) -> None:
    """put/get-bucket-versioning, delete-object (--version-id, markers), copy-object."""
    b = _bucket(s3cloud, "cli-v")
    assert _api(s3cloud, "get-bucket-versioning", "--bucket", b).get("Status") is None
    _api(s3cloud, "put-bucket-versioning", "--bucket", b, "--versioning-configuration",
         "Status=Enabled")
    assert _api(s3cloud, "get-bucket-versioning", "--bucket", b)["Status"] == "Enabled"
    v1 = _api(s3cloud, "put-object", "--bucket", b, "--key", "k", "--body",
              _file(tmp_path, "v1", b"one"), "--metadata", "gen=1")
    v2 = _api(s3cloud, "put-object", "--bucket", b, "--key", "k", "--body",
              _file(tmp_path, "v2", b"two"), "--metadata", "gen=2",
              "--content-type", "text/two")
    assert v1["VersionId"] and v2["VersionId"] and v1["VersionId"] != v2["VersionId"]
    out = tmp_path / "out"
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "k", "--version-id",
               v1["VersionId"], str(out))
    assert out.read_bytes() == b"one" and got["VersionId"] == v1["VersionId"]

    # copy-object: the current version, a named version, COPY and REPLACE directives
    cp = _api(s3cloud, "copy-object", "--bucket", b, "--key", "c-cur", "--copy-source",
              f"{b}/k")
    assert cp["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"two").hexdigest()}"'
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "c-cur", str(out))
    assert out.read_bytes() == b"two" and got["Metadata"] == {"gen": "2"}
    assert got["ContentType"] == "text/two"
    cp = _api(s3cloud, "copy-object", "--bucket", b, "--key", "c-old", "--copy-source",
              f"{b}/k?versionId={v1['VersionId']}", "--metadata-directive", "COPY",
              "--metadata", "ignored=yes")
    assert cp["CopySourceVersionId"] == v1["VersionId"] and cp["VersionId"]
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "c-old", str(out))
    assert out.read_bytes() == b"one" and got["Metadata"] == {"gen": "1"}
    _api(s3cloud, "copy-object", "--bucket", b, "--key", "c-new", "--copy-source", f"{b}/k",
         "--metadata-directive", "REPLACE", "--metadata", "fresh=yes",
         "--content-type", "text/fresh")
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "c-new", str(out))
    assert out.read_bytes() == b"two" and got["Metadata"] == {"fresh": "yes"}
    assert got["ContentType"] == "text/fresh"
    _fails(s3cloud, "PreconditionFailed", "copy-object", "--bucket", b, "--key", "c-bad",
           "--copy-source", f"{b}/k", "--copy-source-if-match",
           '"0123456789abcdef0123456789abcdef"')
    _fails(s3cloud, "InvalidRequest", "copy-object", "--bucket", b, "--key", "k",
           "--copy-source", f"{b}/k")
    _fails(s3cloud, "NoSuchKey", "copy-object", "--bucket", b, "--key", "c-x",
           "--copy-source", f"{b}/missing")

    # delete-object: a delete marker, then removing the marker brings the object back
    gone = _api(s3cloud, "delete-object", "--bucket", b, "--key", "k")
    assert gone["DeleteMarker"] is True and gone["VersionId"]
    _fails(s3cloud, "NoSuchKey", "get-object", "--bucket", b, "--key", "k", str(out))
    back = _api(s3cloud, "delete-object", "--bucket", b, "--key", "k", "--version-id",
                gone["VersionId"])
    assert back["VersionId"] == gone["VersionId"] and back["DeleteMarker"] is True
    _api(s3cloud, "get-object", "--bucket", b, "--key", "k", str(out))
    assert out.read_bytes() == b"two"
    dropped = _api(s3cloud, "delete-object", "--bucket", b, "--key", "k", "--version-id",
                   v2["VersionId"])
    assert dropped["VersionId"] == v2["VersionId"] and "DeleteMarker" not in dropped
    _api(s3cloud, "get-object", "--bucket", b, "--key", "k", str(out))
    assert out.read_bytes() == b"one"  # the older version is current again
    _fails(s3cloud, "NoSuchVersion", "get-object", "--bucket", b, "--key", "k",
           "--version-id", v2["VersionId"], str(out))

    _api(s3cloud, "put-bucket-versioning", "--bucket", b, "--versioning-configuration",
         "Status=Suspended")
    assert _api(s3cloud, "get-bucket-versioning", "--bucket", b)["Status"] == "Suspended"
    _fails(s3cloud, "MalformedXML", "put-bucket-versioning", "--bucket", b,
           "--versioning-configuration", "Status=Sometimes")


def test_delete_objects_and_listings(s3cloud: S3Cloud, tmp_path: Path) -> None:
    """delete-objects (Quiet true/false), list-objects (v1) and list-objects-v2 paging."""
    b = _bucket(s3cloud, "cli-l")
    body = _file(tmp_path, "x", b"x")
    keys = ["a", "b", "dir/c", "dir/d", "dir/sub/e", "z&y=x+w"]
    for key in keys:
        _api(s3cloud, "put-object", "--bucket", b, "--key", key, "--body", body)

    # v1: delimiter and prefix, CommonPrefixes, marker paging with max-keys
    top = _api(s3cloud, "list-objects", "--bucket", b, "--delimiter", "/")
    assert [o["Key"] for o in top["Contents"]] == ["a", "b", "z&y=x+w"]
    assert top["CommonPrefixes"] == [{"Prefix": "dir/"}]
    assert top["Contents"][0]["Size"] == 1 and top["Contents"][0]["Owner"]["ID"]
    sub = _api(s3cloud, "list-objects", "--bucket", b, "--prefix", "dir/",
               "--delimiter", "/")
    assert [o["Key"] for o in sub["Contents"]] == ["dir/c", "dir/d"]
    assert sub["CommonPrefixes"] == [{"Prefix": "dir/sub/"}]
    page = _api(s3cloud, "list-objects", "--bucket", b, "--max-keys", "2")
    assert [o["Key"] for o in page["Contents"]] == ["a", "b"]
    assert page["IsTruncated"] is True and page["MaxKeys"] == 2
    page = _api(s3cloud, "list-objects", "--bucket", b, "--max-keys", "2", "--marker", "b")
    assert [o["Key"] for o in page["Contents"]] == ["dir/c", "dir/d"]
    assert page["IsTruncated"] is True and page["Marker"] == "b"
    page = _api(s3cloud, "list-objects", "--bucket", b, "--max-keys", "3", "--marker",
                "dir/d")
    assert [o["Key"] for o in page["Contents"]] == ["dir/sub/e", "z&y=x+w"]
    assert page["IsTruncated"] is False
    page = _api(s3cloud, "list-objects", "--bucket", b, "--max-keys", "1", "--delimiter", "/")
    assert page["IsTruncated"] is True and page["NextMarker"] == "a"

    # v2: start-after, fetch-owner, KeyCount, continuation tokens, url encoding
    v2 = _api(s3cloud, "list-objects-v2", "--bucket", b, "--start-after", "dir/c",
              "--max-keys", "10")  # a --max-keys turns the CLI's paging off: the raw answer
    assert [o["Key"] for o in v2["Contents"]] == ["dir/d", "dir/sub/e", "z&y=x+w"]
    assert v2["KeyCount"] == 3 and v2["StartAfter"] == "dir/c"
    assert "Owner" not in v2["Contents"][0]
    v2 = _api(s3cloud, "list-objects-v2", "--bucket", b, "--fetch-owner", "--prefix", "dir/",
              "--max-keys", "10")
    assert v2["Contents"][0]["Owner"]["ID"] == s3cloud.demo.project_id
    assert v2["KeyCount"] == 3 and v2["Prefix"] == "dir/"
    first = _api(s3cloud, "list-objects-v2", "--bucket", b, "--max-keys", "4")
    assert first["KeyCount"] == 4 and first["IsTruncated"] is True
    rest = _api(s3cloud, "list-objects-v2", "--bucket", b, "--continuation-token",
                first["NextContinuationToken"])
    assert [o["Key"] for o in first["Contents"] + rest["Contents"]] == keys
    assert rest["KeyCount"] == 2 and rest["IsTruncated"] is False
    assert rest["ContinuationToken"] == first["NextContinuationToken"]
    seen, token = [], None
    for _ in range(4):  # the CLI's own paging: --max-items/--starting-token, 2 per call
        more = ["--starting-token", token] if token else []
        got = _api(s3cloud, "list-objects-v2", "--bucket", b, "--max-items", "2",
                   "--page-size", "2", *more)
        seen += [o["Key"] for o in got["Contents"]]
        token = got.get("NextToken")
        if not token:
            break
    assert seen == keys
    enc = _api(s3cloud, "list-objects-v2", "--bucket", b, "--prefix", "z",
               "--encoding-type", "url", "--max-keys", "10")
    assert enc["EncodingType"] == "url"
    assert [o["Key"] for o in enc["Contents"]] == ["z%26y%3Dx%2Bw"]  # asked: not decoded
    _fails(s3cloud, "NoSuchBucket", "list-objects-v2", "--bucket", f"no-{uuid.uuid4().hex}")

    # delete-objects: Quiet=false names each key (missing ones too), Quiet=true none
    done = _api(s3cloud, "delete-objects", "--bucket", b, "--delete",
                "Objects=[{Key=a},{Key=dir/c},{Key=never-was}],Quiet=false")
    assert sorted(d["Key"] for d in done["Deleted"]) == ["a", "dir/c", "never-was"]
    assert "Errors" not in done
    quiet = _api(s3cloud, "delete-objects", "--bucket", b, "--delete",
                 "Objects=[{Key=b},{Key=dir/d}],Quiet=true")
    assert "Deleted" not in quiet and "Errors" not in quiet
    left = _api(s3cloud, "list-objects-v2", "--bucket", b)
    assert [o["Key"] for o in left["Contents"]] == ["dir/sub/e", "z&y=x+w"]


def test_multipart_upload_lifecycle(s3cloud: S3Cloud, tmp_path: Path) -> None:
    """create-multipart-upload, upload-part(-copy), list-parts, list-multipart-uploads,
    complete-multipart-upload (and InvalidPartOrder), abort-multipart-upload."""
    b = _bucket(s3cloud, "cli-m")
    big, src_data, tail = os.urandom(5 * MIB), os.urandom(5 * MIB + 100), b"the tail"
    _api(s3cloud, "put-object", "--bucket", b, "--key", "src", "--body",
         _file(tmp_path, "src", src_data))
    up = _api(s3cloud, "create-multipart-upload", "--bucket", b, "--key", "mp/obj",
              "--content-type", "text/x-multi", "--metadata", "kind=multi")
    assert up["Bucket"] == b and up["Key"] == "mp/obj" and up["UploadId"]
    uid = up["UploadId"]
    other = _api(s3cloud, "create-multipart-upload", "--bucket", b, "--key", "zz/other")
    p1 = _api(s3cloud, "upload-part", "--bucket", b, "--key", "mp/obj", f"--upload-id={uid}",
              "--part-number", "1", "--body", _file(tmp_path, "p1", big))
    assert p1["ETag"] == f'"{hashlib.md5(big).hexdigest()}"'
    p2 = _api(s3cloud, "upload-part-copy", "--bucket", b, "--key", "mp/obj",
              f"--upload-id={uid}", "--part-number", "2", "--copy-source", f"{b}/src",
              "--copy-source-range", f"bytes=100-{5 * MIB + 99}")
    assert p2["CopyPartResult"]["ETag"] == f'"{hashlib.md5(src_data[100:]).hexdigest()}"'
    p3 = _api(s3cloud, "upload-part", "--bucket", b, "--key", "mp/obj", f"--upload-id={uid}",
              "--part-number", "3", "--body", _file(tmp_path, "p3", tail))
    etags = [p1["ETag"], p2["CopyPartResult"]["ETag"], p3["ETag"]]

    parts = _api(s3cloud, "list-parts", "--bucket", b, "--key", "mp/obj", f"--upload-id={uid}")
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts["Parts"]] == [
        (1, etags[0], 5 * MIB), (2, etags[1], 5 * MIB), (3, etags[2], len(tail))]
    assert parts["Owner"]["ID"] == s3cloud.demo.project_id
    listed = _api(s3cloud, "list-multipart-uploads", "--bucket", b)
    assert sorted((u["Key"], u["UploadId"]) for u in listed["Uploads"]) == [
        ("mp/obj", uid), ("zz/other", other["UploadId"])]
    listed = _api(s3cloud, "list-multipart-uploads", "--bucket", b, "--prefix", "mp/")
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [("mp/obj", uid)]
    assert listed["Prefix"] == "mp/"

    numbered = [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2, 3), etags, strict=True)]
    _fails(s3cloud, "InvalidPartOrder", "complete-multipart-upload", "--bucket", b, "--key",
           "mp/obj", f"--upload-id={uid}", "--multipart-upload",
           _json_file(tmp_path, "bad.json", {"Parts": [numbered[1], numbered[0],
                                                       numbered[2]]}))
    _fails(s3cloud, "InvalidPart", "complete-multipart-upload", "--bucket", b, "--key",
           "mp/obj", f"--upload-id={uid}", "--multipart-upload",
           _json_file(tmp_path, "wrong.json", {"Parts": [
               numbered[0], {"PartNumber": 2, "ETag": etags[0]}, numbered[2]]}))
    done = _api(s3cloud, "complete-multipart-upload", "--bucket", b, "--key", "mp/obj",
                f"--upload-id={uid}", "--multipart-upload",
                _json_file(tmp_path, "parts.json", {"Parts": numbered}))
    md5s = hashlib.md5(b"".join(bytes.fromhex(e.strip('"')) for e in etags)).hexdigest()
    assert done["ETag"] == f'"{md5s}-3"' and done["Key"] == "mp/obj" and done["Bucket"] == b
    assert done["Location"].endswith(f"/{b}/mp/obj")
    out = tmp_path / "out"
    got = _api(s3cloud, "get-object", "--bucket", b, "--key", "mp/obj", str(out))
    assert out.read_bytes() == big + src_data[100:] + tail
    assert got["ETag"] == done["ETag"] and got["ContentLength"] == 10 * MIB + len(tail)
    assert got["ContentType"] == "text/x-multi" and got["Metadata"] == {"kind": "multi"}
    head = _api(s3cloud, "head-object", "--bucket", b, "--key", "mp/obj")
    assert head["ETag"].endswith('-3"')
    listed = _api(s3cloud, "list-multipart-uploads", "--bucket", b)
    assert [u["Key"] for u in listed["Uploads"]] == ["zz/other"]

    # abort: the upload and its parts are gone
    oid = other["UploadId"]
    _api(s3cloud, "upload-part", "--bucket", b, "--key", "zz/other", f"--upload-id={oid}",
         "--part-number", "1", "--body", _file(tmp_path, "o1", tail))
    assert _api(s3cloud, "abort-multipart-upload", "--bucket", b, "--key", "zz/other",
                f"--upload-id={oid}") == {}
    _fails(s3cloud, "NoSuchUpload", "list-parts", "--bucket", b, "--key", "zz/other",
           f"--upload-id={oid}")
    _fails(s3cloud, "NoSuchUpload", "abort-multipart-upload", "--bucket", b, "--key",
           "zz/other", f"--upload-id={oid}")
    _fails(s3cloud, "NoSuchUpload", "upload-part", "--bucket", b, "--key", "zz/other",
           f"--upload-id={oid}", "--part-number", "2", "--body", _file(tmp_path, "o2", tail))
    assert _api(s3cloud, "list-multipart-uploads", "--bucket", b).get("Uploads") in (None, [])


def test_cors_lifecycle_and_object_attributes(s3cloud: S3Cloud, tmp_path: Path) -> None:
    """put/get/delete-bucket-cors (+ an anonymous preflight), the lifecycle configuration
    commands, and get-object-attributes."""
    b = _bucket(s3cloud, "cli-c")
    _fails(s3cloud, "NoSuchCORSConfiguration", "get-bucket-cors", "--bucket", b)
    rules = [{"ID": "web", "AllowedHeaders": ["content-type"], "AllowedMethods": ["GET", "PUT"],
              "AllowedOrigins": ["https://*.example.com"], "ExposeHeaders": ["ETag"],
              "MaxAgeSeconds": 600}]
    assert _api(s3cloud, "put-bucket-cors", "--bucket", b, "--cors-configuration",
                _json_file(tmp_path, "cors.json", {"CORSRules": rules})) == {}
    assert _api(s3cloud, "get-bucket-cors", "--bucket", b)["CORSRules"] == rules
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "content-type"}
    r = requests.options(f"{s3cloud.endpoint}/{b}/some/key", headers=preflight, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Max-Age"] == "600"
    r = requests.options(f"{s3cloud.endpoint}/{b}/some/key", timeout=10,
                         headers={**preflight, "Origin": "https://evil.example.org"})
    assert r.status_code == 403 and "<Code>AccessForbidden</Code>" in r.text
    _fails(s3cloud, "MalformedXML", "put-bucket-cors", "--bucket", b, "--cors-configuration",
           _json_file(tmp_path, "bad.json", {"CORSRules": [{"AllowedMethods": ["GET"],
                                                             "AllowedOrigins": []}]}))
    assert _api(s3cloud, "delete-bucket-cors", "--bucket", b) == {}
    _fails(s3cloud, "NoSuchCORSConfiguration", "get-bucket-cors", "--bucket", b)
    r = requests.options(f"{s3cloud.endpoint}/{b}/some/key", headers=preflight, timeout=10)
    assert r.status_code == 403

    _fails(s3cloud, "NoSuchLifecycleConfiguration", "get-bucket-lifecycle-configuration",
           "--bucket", b)
    lc = {"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
         "Expiration": {"Days": 30}},
        {"ID": "old", "Status": "Disabled", "Filter": {"Prefix": ""},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]}
    _api(s3cloud, "put-bucket-lifecycle-configuration", "--bucket", b,
         "--lifecycle-configuration", _json_file(tmp_path, "lc.json", lc))
    assert _api(s3cloud, "get-bucket-lifecycle-configuration", "--bucket", b)["Rules"] \
        == lc["Rules"]
    # nubis has one storage class: transitions are refused rather than ignored (README)
    _fails(s3cloud, "NotImplemented", "put-bucket-lifecycle-configuration", "--bucket", b,
           "--lifecycle-configuration", _json_file(tmp_path, "tr.json", {"Rules": [
               {"ID": "t", "Status": "Enabled", "Filter": {"Prefix": ""},
                "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]}))
    assert _api(s3cloud, "delete-bucket-lifecycle", "--bucket", b) == {}
    _fails(s3cloud, "NoSuchLifecycleConfiguration", "get-bucket-lifecycle-configuration",
           "--bucket", b)

    # get-object-attributes
    _api(s3cloud, "put-object", "--bucket", b, "--key", "k", "--body",
         _file(tmp_path, "k", b"attrs"), "--checksum-algorithm", "SHA256")
    got = _api(s3cloud, "get-object-attributes", "--bucket", b, "--key", "k",
               "--object-attributes", "ETag", "ObjectSize", "StorageClass", "Checksum",
               "ObjectParts")
    assert got["ETag"] == hashlib.md5(b"attrs").hexdigest()  # unquoted, as S3
    assert (got["ObjectSize"], got["StorageClass"]) == (5, "STANDARD")
    assert got["Checksum"] == {"ChecksumSHA256": base64.b64encode(
        hashlib.sha256(b"attrs").digest()).decode(), "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in got and "LastModified" in got  # not a multipart object
    _fails(s3cloud, "InvalidArgument", "get-object-attributes", "--bucket", b, "--key", "k",
           "--object-attributes", "Colour")
    _fails(s3cloud, "NoSuchKey", "get-object-attributes", "--bucket", b, "--key", "nope",
           "--object-attributes", "ETag")
