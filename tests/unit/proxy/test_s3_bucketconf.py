"""Parsing and matching of S3 bucket CORS and lifecycle documents (S3's errors)."""

from __future__ import annotations

import pytest
from nubis.api.proxy.s3 import cors, lifecycle
from nubis.api.proxy.s3.errors import S3Error


def _cors(*rules: str) -> bytes:
    return ("<CORSConfiguration>" + "".join(f"<CORSRule>{r}</CORSRule>" for r in rules)
            + "</CORSConfiguration>").encode()


def _code(body: bytes, parse: object) -> str:
    with pytest.raises(S3Error) as exc:
        parse(body)  # type: ignore[operator]
    return exc.value.code


def test_cors_rules_parse_store_and_render() -> None:
    body = _cors("<ID>x</ID><AllowedOrigin>https://*.a.com</AllowedOrigin>"
                 "<AllowedMethod>GET</AllowedMethod><AllowedHeader>X-Amz-*</AllowedHeader>"
                 "<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>9</MaxAgeSeconds>")
    rules = cors.parse_rules(body)
    assert cors.decode(cors.encode(rules)) == rules
    rule = rules[0]
    assert rule.allows("https://w.a.com", "GET", ["x-amz-date"])
    assert not rule.allows("https://w.a.com", "PUT", [])
    assert not rule.allows("https://a.com.evil", "GET", [])
    assert not rule.allows("https://w.a.com", "GET", ["authorization"])
    xml = cors.rules_xml(rules)
    assert b"<AllowedOrigin>https://*.a.com</AllowedOrigin>" in xml
    assert b"<MaxAgeSeconds>9</MaxAgeSeconds>" in xml


@pytest.mark.parametrize(("body", "code"), [
    (b"<CORSConfiguration/>", "MalformedXML"),
    (_cors("<AllowedMethod>GET</AllowedMethod>"), "MalformedXML"),
    (_cors("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><X/>"),
     "MalformedXML"),
    (_cors("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>"),
     "InvalidRequest"),
    (_cors("<AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"),
     "InvalidRequest"),
    (_cors("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
           "<MaxAgeSeconds>-1</MaxAgeSeconds>"), "MalformedXML"),
    (_cors(*["<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"] * 101),
     "MalformedXML"),
])
def test_cors_bad_documents(body: bytes, code: str) -> None:
    assert _code(body, cors.parse_rules) == code


def _lc(rule: str) -> bytes:
    return f"<LifecycleConfiguration><Rule>{rule}</Rule></LifecycleConfiguration>".encode()


def test_lifecycle_rules_parse_and_render_as_set() -> None:
    body = _lc("<ID>a</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value>"
               "</Tag><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></And></Filter>"
               "<Status>Enabled</Status><Expiration><Date>2030-01-01T00:00:00Z</Date>"
               "</Expiration>")
    (rule,) = lifecycle.parse_rules(body)
    assert (rule.prefix, rule.tags, rule.size_gt, rule.date) == ("p/", (("k", "v"),), 5,
                                                                 1893456000)
    xml = lifecycle.rules_xml([rule])
    assert b"<Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key>" in xml
    assert b"<Date>2030-01-01T00:00:00.000Z</Date>" in xml
    (legacy,) = lifecycle.parse_rules(_lc("<Prefix>x</Prefix><Status>Disabled</Status>"
                                          "<Expiration><Days>3</Days></Expiration>"))
    assert not legacy.enabled and legacy.days == 3 and legacy.id  # an ID is generated
    assert b"<Prefix>x</Prefix><Status>Disabled</Status>" in lifecycle.rules_xml([legacy])


@pytest.mark.parametrize(("rule", "code"), [
    ("<Filter/><Status>Enabled</Status><Expiration><Days>0</Days></Expiration>",
     "InvalidArgument"),
    ("<Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01T01:00:00Z</Date>"
     "</Expiration>", "InvalidArgument"),
    ("<Filter/><Status>Enabled</Status><Expiration><Date>soon</Date></Expiration>",
     "MalformedXML"),
    ("<Filter/><Status>Enabled</Status><Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z"
     "</Date></Expiration>", "MalformedXML"),
    ("<Filter/><Status>Enabled</Status>", "InvalidRequest"),
    ("<Filter/><Status>On</Status><Expiration><Days>1</Days></Expiration>", "MalformedXML"),
    ("<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>", "MalformedXML"),
    ("<Prefix/><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
     "MalformedXML"),
    ("<Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>"
     "<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>", "MalformedXML"),
    ("<Filter><And><Tag><Key>k</Key><Value>v</Value></Tag><Tag><Key>k</Key><Value>w</Value>"
     "</Tag></And></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>",
     "InvalidRequest"),
    ("<Filter/><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER"
     "</StorageClass></Transition>", "NotImplemented"),
    ("<Filter/><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>"
     "0</DaysAfterInitiation></AbortIncompleteMultipartUpload>", "InvalidArgument"),
    ("<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>"
     "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
     "</AbortIncompleteMultipartUpload>", "InvalidRequest"),
    ("<Filter/><Status>Enabled</Status><NoncurrentVersionExpiration></NoncurrentVersionExpiration>",
     "MalformedXML"),
    ("<Filter/><Status>Enabled</Status><Expiration><Days>1</Days><ExpiredObjectDeleteMarker>"
     "true</ExpiredObjectDeleteMarker></Expiration>", "MalformedXML"),
])
def test_lifecycle_bad_documents(rule: str, code: str) -> None:
    assert _code(_lc(rule), lifecycle.parse_rules) == code


def test_lifecycle_version_and_upload_actions_parse_and_render() -> None:
    body = _lc("<ID>v</ID><Filter><Prefix>p/</Prefix></Filter><Status>Enabled</Status>"
               "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
               "</Expiration><NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays>"
               "</NoncurrentVersionExpiration><AbortIncompleteMultipartUpload>"
               "<DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload>")
    (rule,) = lifecycle.parse_rules(body)
    assert (rule.marker, rule.noncurrent_days, rule.abort_days, rule.days) == (True, 7, 2, None)
    xml = lifecycle.rules_xml([rule])
    assert (b"<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
            b"</Expiration><NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays>"
            b"</NoncurrentVersionExpiration><AbortIncompleteMultipartUpload>"
            b"<DaysAfterInitiation>2</DaysAfterInitiation>") in xml
    assert lifecycle.parse_rules(lifecycle.rules_xml([rule])) == [rule]


def test_lifecycle_rule_ids_are_unique() -> None:
    rule = "<ID>a</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
    body = f"<LifecycleConfiguration><Rule>{rule}</Rule><Rule>{rule}</Rule>" \
           "</LifecycleConfiguration>"
    assert _code(body.encode(), lifecycle.parse_rules) == "InvalidArgument"
    assert _code(b"<LifecycleConfiguration/>", lifecycle.parse_rules) == "MalformedXML"
