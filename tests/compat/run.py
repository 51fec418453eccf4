"""Run Swift's own functional test suite against a nubis cloud: ``make test-swift-compat``.

Steps: fetch the pinned ``swift`` sdist and its virtualenv (:mod:`tests.compat.suite`),
start a cloud on free test ports with the users the suite expects (a test profile,
not ``make up``'s users), write ``SWIFT_TEST_CONFIG_FILE``, run pytest over
``test/functional`` (the s3api package included: its S3 keys are tempauth's
``account:user``/key pairs, as in Swift's SAIO) and ``test/s3api`` (Swift's boto3
and raw-request S3 suite, written to pass against AWS too: module ``s3compat``),
then the tests that need Keystone
(``auth_version = 3``) against a second cloud (:mod:`tests.compat.keystone`), print
passed/failed/errored/skipped per module, and check the ratchet: every test id in
``tests/compat/swift-passed.txt`` must still pass (``--update`` adds new passes;
ids in ``swift-flaky.txt`` are reported but never fail the run).

Usage::

    python -m tests.compat.run [--update] [--modules tests test_object ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from tests.compat import keystone, suite
from tests.functional.proxy.cloud import Cloud, start_cloud

HERE = Path(__file__).resolve().parent
PASSED_FILE = HERE / "swift-passed.txt"
FLAKY_FILE = HERE / "swift-flaky.txt"
#: Seconds one test may take (pytest-timeout), and the whole run.
TEST_TIMEOUT = 60
RUN_TIMEOUT = 3600

#: Users of Swift's SAIO ``proxy-server.conf`` that the default cloud lacks.
EXTRA_USERS = """
[tempauth.users."test:tester2"]
key = "testing2"
groups = [".admin"]

[tempauth.users."test5:tester5"]
key = "testing5"
groups = ["service"]

[tempauth.require_group]
SERVICE_ = "service"
"""
#: Lines of the existing ``[tempauth]`` section: SAIO's ``reseller_prefix = AUTH, SERVICE``.
TEMPAUTH_LINES = 'extra_reseller_prefixes = ["SERVICE_"]'
#: Lines put at the top of existing sections: the tempauth line above, and S3 ACLs
#: enforced per user (s3api's ``s3_acl``, which the xxe ``put_bucket_acl`` test needs).
SECTION_LINES = {"tempauth": TEMPAUTH_LINES, "proxy": "s3_acl = true"}


def test_conf(cloud: Cloud) -> str:
    """Return the suite's ``test.conf`` for ``cloud`` (``[func_test]``)."""
    return f"""[func_test]
auth_uri = {cloud.auth_url}
auth_version = 1
account = test
username = tester
password = testing
account2 = test2
username2 = tester2
password2 = testing2
username3 = tester3
password3 = testing3
account5 = test5
username5 = tester5
password5 = testing5
service_prefix = SERVICE
account6 = admin
username6 = admin
password6 = admin
s3_access_key = test:tester
s3_secret_key = testing
s3_access_key2 = test:tester2
s3_secret_key2 = testing2
s3_access_key3 = test:tester3
s3_secret_key3 = testing3
collate = C
insecure = no
storage_domain = swift.localhost

[s3api_test]
endpoint = {cloud.proxy_url}
region = us-east-1
access_key1 = test:tester
secret_key1 = testing
access_key2 = test:tester2
secret_key2 = testing2
access_key3 = test:tester3
secret_key3 = testing3

[unit_test]
fake_syslog = False
"""


def run_suite(root: Path, venv: Path, conf: Path, junit: Path,
              targets: list[str]) -> int:
    """Run pytest of the suite's venv over ``targets`` (node ids); return its exit code."""
    cmd = [str(venv / "bin" / "python"), "-m", "pytest", *targets,
           "-o", "python_files=test_*.py tests.py",
           "-p", "no:cacheprovider", "-q", "--no-header", "-rN", "--tb=no",
           f"--timeout={TEST_TIMEOUT}", f"--junitxml={junit}"]
    env = {**os.environ, "SWIFT_TEST_CONFIG_FILE": str(conf), "PYTHONDONTWRITEBYTECODE": "1"}
    print("compat: $ " + " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, timeout=RUN_TIMEOUT, check=False,
                              stdout=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"compat: suite exceeded {RUN_TIMEOUT}s", flush=True)
        return 124
    return proc.returncode


#: Module name of Swift's ``test/s3api`` package (``s3compat``, ``s3compat.test_mpu``).
S3COMPAT = "s3compat"
#: What the first pass runs when no module is named.
ALL_TARGETS = ["test/functional", "test/s3api"]


def target_of(root: Path, module: str) -> str:
    """Return the pytest target of a module (``tests``, ``s3api.test_bucket``, ``s3compat``)."""
    head, _, rest = module.partition(".")
    if head == S3COMPAT:
        rel = "test/s3api" + ("/" + rest.replace(".", "/") if rest else "")
    else:
        rel = "test/functional/" + module.replace(".", "/")
    return rel if (root / rel).is_dir() else rel + ".py"


def selected(module: str, modules: list[str]) -> bool:
    """Tell whether ``module`` is one of ``modules`` (a package selects its modules)."""
    return not modules or any(module == m or module.startswith(m + ".") for m in modules)


def outcomes(junit: Path) -> dict[str, str]:
    """Return ``test id -> passed|failed|error|skipped`` from a JUnit XML report."""
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tid = test_id(case)
        kinds = {child.tag for child in case}
        out[tid] = ("error" if "error" in kinds else "failed" if "failure" in kinds else
                    "skipped" if "skipped" in kinds else "passed")
    return out


def test_id(case: ET.Element) -> str:
    """Return a stable id of a JUnit test case (``test.functional.<module>.<Class>::<name>``).

    Cases of ``test/s3api`` are ``test.s3api.<module>.<Class>::<name>``.
    """
    classname = case.get("classname") or ""
    i = classname.find("test.functional.")
    if i < 0:
        i = classname.find("test.s3api.")
    return f"{classname[i:] if i >= 0 else classname}::{case.get('name')}"


def causes(junit: Path, top: int = 25) -> list[tuple[int, str]]:
    """Return the most common failure/error messages (first line) with their counts."""
    counter: Counter[str] = Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                msg = (child.get("message") or child.text or "").strip().splitlines()
                first = msg[0] if msg else child.tag
                first = re.sub(r"'/v1/[^']*'", "'/v1/...'", first)
                counter[re.sub(r"txid=\S+|tx[0-9a-f]{10,}\S*", "tx...", first)[:160]] += 1
    return [(n, m) for m, n in counter.most_common(top)]


def module_of(tid: str) -> str:
    """Return the module of a test id (``test.functional.tests.TestAccount::x`` -> tests).

    Modules of the ``s3api`` package keep it: ``s3api.test_bucket``; those of
    ``test/s3api`` are ``s3compat.test_mpu``.
    """
    parts = tid.split("::")[0].split(".")
    if parts[:2] == ["test", "s3api"] and len(parts) > 2:
        return f"{S3COMPAT}.{parts[2]}"
    if "functional" in parts and parts.index("functional") + 1 < len(parts):
        i = parts.index("functional") + 1
        if parts[i] == "s3api" and i + 1 < len(parts):
            return f"s3api.{parts[i + 1]}"
        return parts[i]
    return parts[-1]


def print_table(results: dict[str, str]) -> None:
    """Print passed/failed/errored/skipped per module and the total."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for tid, outcome in results.items():
        per[module_of(tid)][outcome] += 1
    print(f"{'module':34} {'passed':>7} {'failed':>7} {'error':>7} {'skipped':>8} {'total':>6}")
    total: Counter[str] = Counter()
    for mod in sorted(per):
        c = per[mod]
        total.update(c)
        print(f"{mod:34} {c['passed']:7} {c['failed']:7} {c['error']:7} {c['skipped']:8} "
              f"{sum(c.values()):6}")
    print(f"{'TOTAL':34} {total['passed']:7} {total['failed']:7} {total['error']:7} "
          f"{total['skipped']:8} {sum(total.values()):6}", flush=True)


def read_ids(path: Path) -> set[str]:
    """Return the test ids listed in ``path`` (one per line, ``#`` comments)."""
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def ratchet(results: dict[str, str], modules: list[str], update: bool) -> int:
    """Compare with ``swift-passed.txt``; return 1 when a listed test stopped passing."""
    listed = read_ids(PASSED_FILE)
    flaky = read_ids(FLAKY_FILE)
    ran = {t for t in listed if selected(module_of(t), modules)}
    lost = sorted(t for t in ran if results.get(t) != "passed" and t not in flaky)
    for t in lost:
        print(f"compat: REGRESSION {t}: {results.get(t, 'not run')}")
    passed = {t for t, o in results.items() if o == "passed"}
    new = passed - listed
    if update and new:
        PASSED_FILE.write_text("# Swift functional tests nubis passes (ratchet; "
                               "python -m tests.compat.run --update)\n"
                               + "".join(f"{t}\n" for t in sorted(listed | passed)))
        print(f"compat: added {len(new)} ids to {PASSED_FILE.name}")
    elif new:
        print(f"compat: {len(new)} tests pass that {PASSED_FILE.name} does not list "
              "(--update adds them)")
    return 1 if lost else 0


def target_groups(targets: list[str]) -> list[list[str]]:
    """Split targets into the pytest runs they need: ``test/s3api`` runs on its own.

    Its package and ``test/functional``'s s3api package both patch botocore at
    import; loaded into one process they recurse without end.
    """
    compat = [t for t in targets if t.startswith("test/s3api")]
    rest = [t for t in targets if not t.startswith("test/s3api")]
    return [g for g in (rest, compat) if g]


def run_pass(root: Path, venv: Path, args: argparse.Namespace, junit_name: str,
             targets: list[str], section_lines: dict[str, str],
             write_conf: Callable[[Cloud, Path], object],
             extra_config: str = "") -> dict[str, str]:
    """Run ``targets`` against a fresh test cloud; return their outcomes."""
    with tempfile.TemporaryDirectory(prefix="nubis-compat-") as tmp:
        cloud = start_cloud(Path(tmp) / "state", frontend=args.frontend,
                            extra_config=EXTRA_USERS + extra_config,
                            section_lines=section_lines)
        try:
            conf = Path(tmp) / "test.conf"
            write_conf(cloud, conf)
            results: dict[str, str] = {}
            for i, group in enumerate(target_groups(targets)):
                junit = suite.cache_dir() / (junit_name if not i else f"{i}-{junit_name}")
                junit.unlink(missing_ok=True)
                run_suite(root, venv, conf, junit, group)
                if not junit.exists():
                    continue
                results.update(outcomes(junit))
                if args.causes:
                    for n, msg in causes(junit):
                        print(f"{n:5}  {msg}")
        finally:
            cloud.down()
    return results


def merged(first: dict[str, str], second: dict[str, str]) -> dict[str, str]:
    """Return ``first`` updated by the second pass: a pass anywhere is a pass."""
    out = dict(first)
    for tid, outcome in second.items():
        if outcome == "passed" or tid not in out:
            out[tid] = outcome
    return out


def main(argv: list[str]) -> int:
    """Run the suite; exit 1 on a ratchet regression, 0 otherwise."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--update", action="store_true", help="add new passes to the ratchet")
    ap.add_argument("--frontend", choices=("asgi", "native"), default="native",
                    help="the proxy front end of the test cloud")
    ap.add_argument("--causes", action="store_true",
                    help="print the most common failure messages")
    ap.add_argument("--modules", nargs="*", default=[],
                    help="run only these modules (e.g. tests test_object s3api "
                         "s3api.test_bucket; s3compat, s3compat.test_mpu: test/s3api)")
    args = ap.parse_args(argv)
    started = time.monotonic()
    root = suite.ensure_suite(suite.cache_dir())
    venv = suite.ensure_venv()
    targets = [target_of(root, m) for m in args.modules] or ALL_TARGETS
    results = run_pass(root, venv, args, "last-junit.xml", targets, SECTION_LINES,
                       lambda cloud, conf: conf.write_text(test_conf(cloud)))
    ks_targets = [t for t in keystone.TARGETS
                  if selected(keystone.module_of_target(t), args.modules)]
    if ks_targets:
        ks_lines = {**SECTION_LINES,
                    "proxy": SECTION_LINES["proxy"] + "\n" + keystone.PROXY_LINES}
        again = run_pass(root, venv, args, "last-junit-keystone.xml", ks_targets, ks_lines,
                         keystone.write_conf, keystone.EXTRA_CONFIG)
        print(f"compat: Keystone pass: {sum(o == 'passed' for o in again.values())} "
              f"of {len(again)} passed", flush=True)
        results = merged(results, again)
    print_table(results)
    print(f"compat: {time.monotonic() - started:.0f}s", flush=True)
    if not results:
        print("compat: the suite produced no report")
        return 1
    return ratchet(results, args.modules, args.update)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
