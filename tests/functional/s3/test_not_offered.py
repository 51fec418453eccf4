"""S3 operations nubis does not offer: NotImplemented, never another operation.

Each of these is a request to a key or a bucket with a sub-resource in its
query. Answered as the plain request it would be without it, a
PutObjectAnnotation, RenameObject or UpdateObjectEncryption would replace the
object (a PUT to the key), a DeleteObjectAnnotation would delete it, a
GetPart of an upload would answer its ListParts and a bucket's GetBucketAbac a
listing. Driven with boto3 (which has them all); the object is checked intact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.functional.s3.conftest import S3Cloud


def _refused(call: Callable[..., Any], **kwargs: Any) -> None:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    err = exc.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("NotImplemented", 501), kwargs


def test_object_operations_not_offered_leave_the_object(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = f"nope-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"the object")
    _refused(s3.put_object_annotation, Bucket=b, Key="k", AnnotationName="note",
             AnnotationPayload=b"not the object")
    _refused(s3.delete_object_annotation, Bucket=b, Key="k", AnnotationName="note")
    _refused(s3.rename_object, Bucket=b, Key="renamed", RenameSource=f"{b}/k")
    _refused(s3.update_object_encryption, Bucket=b, Key="k", ObjectEncryption={
        "SSEKMS": {"KMSKeyArn": "arn:aws:kms:us-east-1:111122223333:key/x"}})
    up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"part")
    _refused(s3.get_part, Bucket=b, Key="mp", UploadId=up, PartNumber=1)
    s3.abort_multipart_upload(Bucket=b, Key="mp", UploadId=up)
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"the object"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["k"]


def test_bucket_operations_not_offered(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = f"nope-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b)
    for call, extra in ((s3.get_bucket_abac, {}),
                        (s3.put_bucket_abac, {"AbacStatus": {"Status": "Enabled"}}),
                        (s3.get_bucket_default_storage_class, {}),
                        (s3.get_bucket_metadata_configuration, {}),
                        (s3.delete_bucket_metadata_table_configuration, {})):
        _refused(call, Bucket=b, **extra)
    s3.head_bucket(Bucket=b)


def test_append_and_object_lock_are_refused(s3cloud: S3Cloud) -> None:
    s3 = s3cloud.client()
    b = f"nope-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"the object")
    # an append at an offset, taken for a PutObject, would leave only " appended"
    _refused(s3.put_object, Bucket=b, Key="k", Body=b" appended", WriteOffsetBytes=10)
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"the object"
    locked = f"nope-{uuid.uuid4().hex[:12]}"
    _refused(s3.create_bucket, Bucket=locked, ObjectLockEnabledForBucket=True)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=locked)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=False)
    s3.head_bucket(Bucket=locked)
