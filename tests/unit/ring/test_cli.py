"""The nubis-ring-builder CLI: every verb, every bad-input case, exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nubis.ring.builderfile import load_builder
from nubis.ring.cli import main
from nubis.ring.ringdata import load_ring_file


class Run:
    """Run the CLI in-process on one builder path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.out = ""
        self.err = ""

    def __call__(self, *args: str) -> int:
        out, err = io.StringIO(), io.StringIO()
        code = main([str(self.path), *args], out=out, err=err)
        self.out, self.err = out.getvalue(), err.getvalue()
        return code


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path / "object.builder")


def add_cluster(run: Run, zones: int = 5, per_zone: int = 4) -> None:
    args = []
    for z in range(1, zones + 1):
        for d in range(per_zone):
            args += [f"r1z{z}-127.0.{z}.{d % 2}:6200/sd{chr(97 + d)}", "100"]
    assert run("add", *args) == 0, run.err


@pytest.fixture
def balanced(run: Run) -> Run:
    assert run("create", "10", "3", "1") == 0
    add_cluster(run)
    assert run("rebalance", "--seed", "1") == 0, run.out + run.err
    return run


def assert_one_error_line(run: Run, needle: str) -> None:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in run.err


# ----------------------------------------------------------------- verbs


def test_help(run: Run) -> None:
    out = io.StringIO()
    assert main(["--help"], out=out) == 0
    assert "rebalance" in out.getvalue() and "list_parts" in out.getvalue()
    assert main([], out=io.StringIO()) == 2


def test_create_and_show(run: Run) -> None:
    assert run("create", "10", "3", "1") == 0
    b = load_builder(run.path)
    assert (b.part_power, b.replicas, b.min_part_hours) == (10, 3.0, 1)
    assert run() == 0
    assert "1024 partitions, 3.000000 replicas" in run.out
    assert "not found" in run.out  # no ring file yet


def test_create_refuses_to_overwrite(run: Run) -> None:
    assert run("create", "8", "3", "1") == 0
    before = run.path.read_bytes()
    assert run("create", "9", "3", "1") == 2
    assert_one_error_line(run, "already exists")
    assert run.path.read_bytes() == before
    assert run("create", "9", "3", "1", "--force") == 0
    assert load_builder(run.path).part_power == 9


def test_add_pairs_and_options(run: Run) -> None:
    run("create", "6", "3", "1")
    assert run("add", "r1z1-127.0.0.1:6200/sdb1_fast", "100",
               "r1z2-127.0.0.1:6201R127.0.0.1:7000/sdb2", "50") == 0
    assert "got id 0" in run.out and "got id 1" in run.out
    assert run("add", "--region", "2", "--zone", "3", "--ip", "127.0.0.3", "--port", "6202",
               "--device", "sdb3", "--weight", "25", "--meta", "m") == 0
    devs = load_builder(run.path).devs
    assert devs[0].meta == "fast" and devs[1].replication_port == 7000
    assert (devs[2].region, devs[2].zone, devs[2].weight, devs[2].meta) == (2, 3, 25.0, "m")


def test_rebalance_writes_builder_and_ring(balanced: Run) -> None:
    assert "Reassigned 3072 (300.00%) partitions" in balanced.out
    ring_path = balanced.path.with_name("object.ring")
    ring = load_ring_file(ring_path)
    assert ring.part_power == 10 and len(ring.replica2part2dev) == 3
    assert balanced() == 0
    assert "is up-to-date" in balanced.out
    assert "Devices:" in balanced.out and "127.0.1.0:6200" in balanced.out


def test_rebalance_within_min_part_hours_warns(balanced: Run) -> None:
    before = balanced.path.read_bytes()
    assert balanced("rebalance") == 1
    assert "min_part_hours" in balanced.out
    assert balanced.path.read_bytes() == before


def test_rebalance_with_nothing_to_do_warns(balanced: Run) -> None:
    balanced("pretend_min_part_hours_passed")
    before = balanced.path.read_bytes()
    assert balanced("rebalance") == 1
    assert balanced.out == ("No partitions could be reassigned.\n"
                            "There is no need to do so at this time\n")
    assert balanced.path.read_bytes() == before
    assert balanced("rebalance", "--force") == 0


def test_adding_devices_within_min_part_hours_reassigns_nothing(balanced: Run) -> None:
    # automation's usual mistake: new capacity, rebalance before min_part_hours passed
    before = balanced.path.read_bytes()
    assert balanced("add", "r1z1-127.0.9.1:6200/new1", "100",
                    "r1z2-127.0.9.2:6200/new2", "100") == 0
    added = balanced.path.read_bytes()
    assert added != before
    assert balanced("rebalance") == 1
    lines = balanced.out.splitlines()
    assert lines[0] == "No partitions could be reassigned."
    assert lines[1].startswith("The time between rebalances must be at least "
                               "min_part_hours: 1 hours (")
    assert lines[1].endswith(" remaining)")
    assert balanced.path.read_bytes() == added  # nothing written
    assert not balanced.err


def test_rebalance_warns_when_balance_stays_high(run: Run) -> None:
    run("create", "8", "3", "1")
    run("add", "r1z1-127.0.0.1:6200/a", "100", "r1z2-127.0.0.1:6200/b", "100",
        "r1z3-127.0.0.1:6200/c", "10")
    assert run("rebalance") == 1
    assert "NOTE: Balance" in run.out


def test_validate(balanced: Run) -> None:
    assert balanced("validate") == 0
    assert "valid" in balanced.out


def test_search(balanced: Run) -> None:
    assert balanced("search", "z2") == 0
    assert balanced.out.count("127.0.2.") == 8  # ip and replication ip of 4 devices
    assert balanced("search", "d99") == 2
    assert "No matching devices" in balanced.err


def test_list_parts(balanced: Run) -> None:
    assert balanced("list_parts", "d0", "d1") == 0
    lines = balanced.out.strip().splitlines()
    assert lines[0].split() == ["Partition", "Matches"]
    assert len(lines) > 10
    assert balanced("list_parts", "d99") == 2


def test_dispersion(balanced: Run) -> None:
    assert balanced("dispersion") == 0
    assert balanced.out.startswith("Dispersion is 0.000000")
    assert balanced("dispersion", "-v") == 0
    assert "r1z1-127.0.1.0/sda" in balanced.out and "Max" in balanced.out


def test_set_weight_and_remove(balanced: Run) -> None:
    assert balanced("set_weight", "d0", "50") == 0
    assert "weight set to 50.0" in balanced.out
    assert balanced("remove", "d1") == 0
    assert "marked for removal" in balanced.out
    assert balanced() == 0 and "DEL" in balanced.out
    assert balanced("rebalance", "--seed", "2") in (0, 1)
    b = load_builder(balanced.path)
    assert b.devs[1] is None and b.devs[0].weight == 50.0
    b.validate()


def test_multiple_matches_need_yes(balanced: Run) -> None:
    before = balanced.path.read_bytes()
    assert balanced("set_weight", "z1", "10") == 2
    assert_one_error_line(balanced, "--yes")
    assert balanced.path.read_bytes() == before
    assert balanced("set_weight", "z1", "10", "--yes") == 0
    assert all(d.weight == 10 for d in load_builder(balanced.path).devs if d and d.zone == 1)
    assert balanced("remove", "z2", "--yes") == 0


def test_set_info(balanced: Run) -> None:
    assert balanced("set_info", "d0", "127.9.9.9:6300/sdz_new") == 0
    assert "is now d0r1z1-127.9.9.9:6300" in balanced.out
    dev = load_builder(balanced.path).devs[0]
    assert (dev.ip, dev.port, dev.device, dev.meta) == ("127.9.9.9", 6300, "sdz", "new")


def test_set_overload_min_part_hours_replicas(balanced: Run) -> None:
    assert balanced("set_overload", "10%") == 0
    assert load_builder(balanced.path).overload == pytest.approx(0.1)
    assert balanced("set_overload", "0.2") == 0
    assert load_builder(balanced.path).overload == pytest.approx(0.2)
    assert balanced("set_min_part_hours", "0") == 0
    assert load_builder(balanced.path).min_part_hours == 0
    assert balanced("set_replicas", "2.5") == 0
    assert balanced("rebalance") in (0, 1)
    ring = load_ring_file(balanced.path.with_name("object.ring"))
    assert [len(r) for r in ring.replica2part2dev] == [1024, 1024, 512]


def test_pretend_min_part_hours_passed(balanced: Run) -> None:
    assert balanced("pretend_min_part_hours_passed") == 0
    assert load_builder(balanced.path).min_part_seconds_left() == 0


def test_write_ring(balanced: Run) -> None:
    ring_path = balanced.path.with_name("object.ring")
    ring_path.unlink()
    assert balanced("write_ring") == 0
    assert load_ring_file(ring_path).version == load_builder(balanced.path).version


def test_ring_name_without_builder_suffix(tmp_path: Path) -> None:
    r = Run(tmp_path / "plain")
    r("create", "6", "1", "0")
    r("add", "r1z1-127.0.0.1:6200/a", "1")
    assert r("rebalance") == 0
    assert (tmp_path / "plain.ring").exists()


# -------------------------------------------------------------- bad input


def test_missing_builder(run: Run) -> None:
    assert run() == 2
    assert_one_error_line(run, "does not exist")
    assert run("add", "r1z1-127.0.0.1:6200/a", "1") == 2
    assert not run.path.exists()


def test_corrupt_builder(balanced: Run) -> None:
    raw = bytearray(balanced.path.read_bytes())
    raw[100] ^= 0x55
    balanced.path.write_bytes(bytes(raw))
    for args in ((), ("rebalance",), ("add", "r1z1-127.0.0.9:6200/x", "1"), ("validate",)):
        assert balanced(*args) == 2
        assert_one_error_line(balanced, "corrupt")
    assert balanced.path.read_bytes() == bytes(raw)


@pytest.mark.parametrize("args", [
    ("add", "r1z1-127.0.0.1/sdb1", "100"),
    ("add", "garbage", "100"),
    ("add", "r1z1-127.0.0.1:6200/sdb1"),
    ("add", "r1z1-127.0.0.1:6200/sdb9", "heavy"),
    ("add", "r1z1-127.0.0.1:6200/sdb9", "-5"),
    ("add", "r1z1-127.0.1.0:6200/sda", "100"),  # already in the ring
    ("add", "--zone", "1", "--ip", "127.0.0.1"),
    ("remove", "d99"),
    ("remove", "q!"),
    ("set_weight", "d99", "10"),
    ("set_weight", "d0", "x"),
    ("set_weight", "d0"),
    ("set_info", "d99", "127.0.0.1:6200"),
    ("set_info", "d0", "!!"),
    ("set_overload", "-1"),
    ("set_overload", "lots"),
    ("set_min_part_hours", "-3"),
    ("set_replicas", "0.5"),
    ("list_parts",),
    ("validate", "extra"),
    ("bogus_verb",),
])
def test_bad_input_is_one_line_and_changes_nothing(balanced: Run, args: tuple[str, ...]) -> None:
    before = balanced.path.read_bytes()
    ring_before = balanced.path.with_name("object.ring").read_bytes()
    assert balanced(*args) == 2
    assert_one_error_line(balanced, "error")
    assert balanced.path.read_bytes() == before
    assert balanced.path.with_name("object.ring").read_bytes() == ring_before


@pytest.mark.parametrize(("args", "needle"), [
    (("create", "33", "3", "1"), "part_power"),
    (("create", "8", "0", "1"), "replicas"),
    (("create", "8", "3", "-1"), "min_part_hours"),
    (("create", "x", "3", "1"), "part_power"),
    (("create", "8", "3"), "min_part_hours"),
])
def test_bad_create(run: Run, args: tuple[str, ...], needle: str) -> None:
    assert run(*args) == 2
    assert_one_error_line(run, needle)
    assert not run.path.exists()


def test_all_weights_zero(run: Run) -> None:
    run("create", "6", "1", "0")
    run("add", "r1z1-127.0.0.1:6200/a", "0", "r1z1-127.0.0.1:6200/b", "0")
    before = run.path.read_bytes()
    assert run("rebalance") == 2
    assert_one_error_line(run, "all weights are zero")
    assert run.path.read_bytes() == before
    assert not run.path.with_name("object.ring").exists()


def test_too_few_devices(run: Run) -> None:
    run("create", "6", "3", "0")
    run("add", "r1z1-127.0.0.1:6200/a", "1")
    assert run("rebalance") == 2
    assert_one_error_line(run, "requires at least 3")


def test_write_ring_before_rebalance(run: Run) -> None:
    run("create", "6", "3", "0")
    assert run("write_ring") == 2
    assert_one_error_line(run, "rebalance first")
    assert run("dispersion") == 2


# ------------------------------------------------------ the console script


def _script() -> str:
    found = shutil.which("nubis-ring-builder", path=os.path.dirname(sys.executable))
    assert found, "console script nubis-ring-builder not installed"
    return found


def test_console_script_builds_validates_and_shows_a_ring(tmp_path: Path) -> None:
    exe = _script()
    builder = str(tmp_path / "object.builder")

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, builder, *args], capture_output=True, text=True,
                              timeout=120, check=False)

    assert sh("create", "10", "3", "1").returncode == 0
    adds = []
    for z in range(1, 6):
        for d in range(4):
            adds += [f"r1z{z}-127.0.{z}.1:6200/d{d}", "100"]
    assert sh("add", *adds).returncode == 0
    rebalanced = sh("rebalance")
    assert rebalanced.returncode == 0, rebalanced.stdout + rebalanced.stderr
    assert sh("validate").returncode == 0
    shown = sh()
    assert shown.returncode == 0 and "20 devices" in shown.stdout
    help_run = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60,
                              check=False)
    assert help_run.returncode == 0 and "usage" in help_run.stdout


def test_console_script_error_exit_code(tmp_path: Path) -> None:
    done = subprocess.run([_script(), str(tmp_path / "none.builder"), "rebalance"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == ""


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal(balanced: Run) -> None:
    balanced("pretend_min_part_hours_passed")
    balanced("add", "r1z1-127.0.1.9:6200/sdz", "100")
    err = _Tty()
    assert main([str(balanced.path), "rebalance", "--seed", "3"], out=io.StringIO(),
                err=err) in (0, 1)
    load_builder(balanced.path).validate()


def test_show_says_when_ring_file_is_obsolete(balanced: Run) -> None:
    balanced("set_weight", "d0", "120")
    assert balanced() == 0
    assert "is obsolete" in balanced.out


# ------------------------------------------------------------------ simulate


def test_simulate_reports_moves_and_writes_nothing(balanced: Run) -> None:
    before = balanced.path.read_bytes()
    ring_before = balanced.path.with_name("object.ring").read_bytes()
    code = balanced("simulate", "add", "r1z6-127.0.6.0:6200/sda", "100",
                    "add", "r1z6-127.0.6.0:6200/sdb", "100", "fail", "r1z1",
                    "--mean-object-size", "1024", "--objects", "1024000", "--json")
    assert code == 0, balanced.err
    report = json.loads(balanced.out)
    assert report["converged"] and report["rebalances"] >= 1
    zones = {(z["region"], z["zone"]): z for z in report["per_zone"]}
    # the failed zone loses everything it held; the moves land elsewhere
    assert zones[1, 1]["gained"] == 0 and zones[1, 1]["lost"] > 0
    assert sum(z["gained"] for z in report["per_zone"]) == report["moved"]
    assert sum(z["lost"] for z in report["per_zone"]) == report["moved"]
    assert report["bytes_copied"] == report["moved"] * 1024000 * 1024 / 1024
    assert report["rounds"][-1]["dispersion"] == 0.0
    assert balanced.path.read_bytes() == before
    assert balanced.path.with_name("object.ring").read_bytes() == ring_before


def test_simulate_waits_out_min_part_hours(balanced: Run) -> None:
    # right after a rebalance everything is pinned: the first round moves nothing,
    # the next one (min_part_hours later) moves
    assert balanced("simulate", "set_weight", "d0", "300", "--json", "--seed", "3") == 0
    report = json.loads(balanced.out)
    rounds = report["rounds"]
    assert rounds[0]["moved"] == 0 and rounds[0]["hours"] == 0
    assert rounds[1]["moved"] > 0 and rounds[1]["hours"] == 1
    assert report["moved"] > 0


def test_simulate_table_output(balanced: Run) -> None:
    assert balanced("simulate", "remove", "d3") == 0
    assert "Part-replicas moved per zone" in balanced.out
    assert "(removed)" in balanced.out
    assert "Nothing was written." in balanced.out


@pytest.mark.parametrize("args", [[], ["bogus", "x"], ["add", "r1z1-127.0.0.1:6200/x"],
                                  ["remove", "d999"], ["set_weight", "d0", "heavy"],
                                  ["add", "nonsense", "100"], ["fail", "r1", "--objects", "-1"]])
def test_simulate_rejects_bad_changes(balanced: Run, args: list[str]) -> None:
    before = balanced.path.read_bytes()
    assert balanced("simulate", *args) == 2
    assert balanced.err.startswith("nubis-ring-builder: error: ")
    assert "Traceback" not in balanced.err
    assert balanced.path.read_bytes() == before


def test_simulate_needs_a_balanced_ring(run: Run) -> None:
    run("create", "6", "3", "1")
    assert run("simulate", "remove", "d0") == 2
    assert "not been rebalanced" in run.err
