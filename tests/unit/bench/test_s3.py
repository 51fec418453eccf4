"""The S3 benchmark's ratios, table and RGW configuration (pure parts)."""

from __future__ import annotations

from pathlib import Path

from nubis.bench import refrgw, s3


def _row(put: float, get: float) -> dict[str, float]:
    return {"put_ops": put, "get_ops": get, "put_mbps": put / 250, "get_mbps": get / 250}


def test_ratios_against_swift_and_rgw() -> None:
    best = {"swift": _row(100, 1000), "s3": _row(90, 900), "rgw": _row(45, 300)}
    assert s3.ratios(best) == {"s3_over_swift_put": 0.9, "s3_over_swift_get": 0.9,
                               "s3_over_rgw_put": 2.0, "s3_over_rgw_get": 3.0}
    assert s3.ratios({"swift": _row(100, 0), "s3": _row(90, 900)})["s3_over_swift_get"] == 0


def test_cpu_ratio_only_when_both_measured() -> None:
    swift = {**_row(100, 1000), "put_cpu_us": 400.0, "get_cpu_us": 200.0}
    s3_row = {**_row(90, 900), "put_cpu_us": 440.0, "get_cpu_us": 230.0}
    out = s3.ratios({"swift": swift, "s3": s3_row})
    assert out["s3_cpu_over_swift_put"] == 1.1
    assert round(out["s3_cpu_over_swift_get"], 2) == 1.15
    unmeasured = {**s3_row, "get_cpu_us": float("inf")}
    assert "s3_cpu_over_swift_get" not in s3.ratios({"swift": swift, "s3": unmeasured})
    line = s3.format_table({label: {"swift": swift, "s3": s3_row,
                                    **s3.ratios({"swift": swift, "s3": s3_row})}
                            for label, _ in s3.SIZES})
    assert "4KiB   proxy CPU per request s3/swift PUT 1.10  GET 1.15" in line


def test_table_lists_each_target_ratio_and_load() -> None:
    res = {label: {"swift": _row(100, 1000), "s3": _row(90, 900), "rgw": _row(45, 300),
                   **s3.ratios({"swift": _row(100, 1000), "s3": _row(90, 900),
                                "rgw": _row(45, 300)})}
           for label, _ in s3.SIZES}
    res["multipart"] = {"mib": 1024, "single_mbps": 50.0, "multipart_mbps": 75.0,
                        "multipart_over_single": 1.5}
    res["load_average"] = {"before": (1.0, 2.0, 3.0), "after": (4.0, 5.0, 6.0)}
    text = s3.format_table(res)
    assert ("1024 MiB upload: one PUT 50.0 MB/s, multipart (8 MiB parts, 4 at a time) "
            "75.0 MB/s (1.50x)") in text
    assert "4KiB   rgw" in text and "1MiB   s3/rgw PUT 2.00  GET 3.00" in text
    assert "4KiB   s3/swift PUT 0.90  GET 0.90" in text
    assert text.endswith("load average before 1.0 2.0 3.0, after 4.0 5.0 6.0")


def test_ceph_conf_is_size_one_loopback_and_nodelay(tmp_path: Path) -> None:
    conf = refrgw.ceph_conf(tmp_path, "fsid", 7001, 7002)
    for line in ("mon host = [v2:127.0.0.1:7001]", "osd pool default size = 1",
                 "mon allow pool size one = true",
                 "rgw frontends = beast endpoint=127.0.0.1:7002 tcp_nodelay=1",
                 f"pid file = {tmp_path}/run/$name.pid"):
        assert line in conf.splitlines()
