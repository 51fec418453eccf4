"""Unit tests of the answers for S3 features nubis does not offer."""

from __future__ import annotations

import pytest
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.unconfigured import ABSENT, asked, check_headers


@pytest.mark.parametrize(("headers", "code"), [
    ({"x-amz-server-side-encryption": "AES256"}, "NotImplemented"),
    ({"x-amz-server-side-encryption": "aws:kms"}, "NotImplemented"),
    ({"x-amz-server-side-encryption": "rot13"}, "InvalidArgument"),
    ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, "NotImplemented"),
    ({"x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256"},
     "NotImplemented"),
    ({"x-amz-storage-class": "STANDARD_IA"}, "InvalidStorageClass"),
    ({"x-amz-mfa": "123 456"}, "NotImplemented"),
    ({"x-amz-website-redirect-location": "/x"}, "NotImplemented"),
    ({"x-amz-object-lock-mode": "GOVERNANCE"}, "InvalidRequest"),
    ({"x-amz-object-lock-event-hold": "ON"}, "InvalidRequest"),
    ({"x-amz-bucket-object-lock-enabled": "True"}, "NotImplemented"),
    ({"x-amz-write-offset-bytes": "5"}, "NotImplemented"),
    ({"x-amz-server-side-encryption-aws-kms-key-id": "k"}, "NotImplemented"),
    ({"x-amz-server-side-encryption-customer-key": "a2V5"}, "NotImplemented"),
])
def test_check_headers_refuses(headers: dict[str, str], code: str) -> None:
    with pytest.raises(S3Error) as exc:
        check_headers({"x-amz-date": "20261206T000000Z", **headers})
    assert exc.value.code == code
    assert exc.value.status == (501 if code == "NotImplemented" else 400)


def test_check_headers_passes_plain_and_standard_requests() -> None:
    check_headers({})
    check_headers({"x-amz-date": "20261206T000000Z", "x-amz-storage-class": "STANDARD",
                   "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    check_headers({"x-amz-bucket-object-lock-enabled": "false"})


def test_asked_names_the_sub_resource() -> None:
    assert asked({"policy": ""}) == "policy"
    assert asked({"analytics": "", "id": "x"}) == "analytics"
    assert asked({"prefix": "a", "max-keys": "3"}) is None
    assert asked({}) is None


def test_every_error_answer_is_a_known_404() -> None:
    from nubis.api.proxy.s3.errors import CODES
    for name, absent in ABSENT.items():
        assert (absent.error is None) != (absent.document == ""), name
        if absent.error is not None:
            assert CODES[absent.error][0] == 404, name
