from __future__ import annotations

import pytest
from nubis.daemons.storage.protocol import (
    ProtocolError,
    Timestamp,
    listing_isoformat,
    parse_path,
    split_hosts,
)


def test_timestamp_forms() -> None:
    ts = Timestamp.parse("1700000000.5")
    assert ts.normal == "1700000000.50000"
    assert ts.internal == "1700000000.50000"
    off = Timestamp.parse("1700000000.50000_000000000000000a")
    assert off.offset == 10 and off.internal == "1700000000.50000_000000000000000a"
    assert off > ts and off.normal == ts.normal
    assert Timestamp.parse("1").normal == "0000000001.00000"
    assert Timestamp.parse("1700000000.123456").normal == "1700000000.12346"  # rounds like Swift
    assert Timestamp.parse("1700000000").isoformat == "2023-11-14T22:13:20.000000"
    assert Timestamp.parse("1700000000.00001").http_date == "Tue, 14 Nov 2023 22:13:21 GMT"
    for bad in ("abc", "-1", "nan", "inf", "1e30"):
        with pytest.raises(ValueError):
            Timestamp.parse(bad)


def test_internal_strings_sort_like_timestamps() -> None:
    values = ["1700000000.00000", "1700000000.00000_0000000000000001", "1700000000.00001",
              "0999999999.99999", "1700000000.00000_00000000000000ff"]
    parsed = sorted(Timestamp.parse(v) for v in values)
    assert [t.internal for t in parsed] == sorted(values)


def test_parse_path() -> None:
    p = parse_path("/sda/12/AUTH_a/c/o/with/slashes%20x", 3, 3)
    assert (p.device, p.partition, p.account, p.container, p.obj) == \
        ("sda", 12, "AUTH_a", "c", "o/with/slashes x")
    assert parse_path("/sda/1/a", 1, 2).container == ""
    for bad in ("/sda/x/a/c/o", "/../1/a/c/o", "/sda/1/a/c", "sda/1/a/c/o", "/sda/1//c/o",
                "/sda/-1/a/c/o", "/sda/1/a/c/"):
        with pytest.raises(ProtocolError) as info:
            parse_path(bad, 3, 3)
        assert info.value.status == 400
    with pytest.raises(ProtocolError) as info:
        parse_path("/sda/1/a/c/%ff", 3, 3)
    assert info.value.status == 412
    with pytest.raises(ProtocolError):
        parse_path("/sda/1/a/c/%00", 3, 3)


def test_split_hosts() -> None:
    h = {"x-container-host": "127.0.0.1:6201, 127.0.0.2:6211", "x-container-partition": "7",
         "x-container-device": "d1,d2"}
    assert split_hosts(h, "x-container-host", "x-container-partition", "x-container-device") == \
        [("127.0.0.1", 6201, "7", "d1"), ("127.0.0.2", 6211, "7", "d2")]
    h["x-container-device"] = "d1"
    assert split_hosts(h, "x-container-host", "x-container-partition", "x-container-device") == []


def test_listing_isoformat_matches_timestamp_isoformat() -> None:
    for value in ("1700000000.12345", "0000000001.00001", "1700000000.1",
                  "1700000000.12345_000000000000000a", "0000000000.00000", "9999999999.99999"):
        assert listing_isoformat(value) == Timestamp.parse(value).isoformat, value
    with pytest.raises(ValueError):
        listing_isoformat("not-a-time")
