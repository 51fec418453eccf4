"""How cost grows with container size: nubis vs Swift 2.38.3's container server.

``python -m nubis.bench scale [--sizes 10k,100k,1M] [--budget SECONDS] [--requests N]
[--sample N] [--plot PATH] [--json PATH]``

Both container servers run alone, each in its own process, and are driven with
backend requests (what the object servers and the proxy send them) in the same
run. For each size the container is first filled in bulk (nubis: ``_rows``
batches over HTTP; Swift: its ``ContainerBroker``, see
:mod:`nubis.bench.scale_servers`), then measured through HTTP:

* **row insert**: ``--sample`` single-row ``PUT``\\ s over 16 connections (what
  an object server without batching sends), rows/s;
* **listings**, one connection, ``--requests`` each, p50/p99 (one warm-up first:
  Swift merges its pending-row file then): ``limit=10000``; ``prefix=d42/``;
  ``delimiter=/`` (100 "directories"); ``marker=d90/`` (the last tenth). Every
  answer's length is checked against the rows inserted;
* **server CPU** per row PUT and per listing (user + system of the server
  process, all threads, from ``/proc``): steadier than wall time on a loaded machine;
* **memory per row**: disk bytes the device occupies / rows, and each server's RSS.

The run stops growing once ``--budget`` seconds have passed (what was measured
is reported). A PNG plot of both curves is written to ``--plot``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nubis.bench import loadgen, procstat
from nubis.bench.scale_servers import (
    DIRS,
    NubisServer,
    Server,
    SwiftServer,
    row_headers,
    row_name,
    rss_bytes,
)

#: Listing queries measured at every size: label -> query string.
QUERIES: dict[str, str] = {
    "limit=10000": "format=json&limit=10000",
    "prefix": "format=json&limit=10000&prefix=d42/",
    "delimiter": "format=json&limit=10000&delimiter=/",
    "deep marker": "format=json&limit=10000&marker=d90/",
}
SYSTEMS = ("nubis", "swift")
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass
class Point:
    """What one system measured at one container size."""

    rows: int
    bulk_rows_per_s: float = 0.0
    put_rows_per_s: float = 0.0
    put_p99_ms: float = 0.0
    #: Server CPU (user + system, all threads) per row PUT, from /proc.
    put_cpu_ms: float = 0.0
    listing_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Server CPU per listing request.
    listing_cpu_ms: dict[str, float] = field(default_factory=dict)
    disk_bytes_per_row: float = 0.0
    rss_mib: float = 0.0


def parse_size(text: str) -> int:
    """Parse ``10k``, ``1M``, ``250000``."""
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def label(n: int) -> str:
    """Return ``10k`` / ``1M`` for a row count."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _in_dirs(n: int, lo: int, hi: int) -> int:
    """Return how many of rows ``0..n-1`` fall in directories ``lo..hi-1``."""
    return sum((n - d + DIRS - 1) // DIRS for d in range(lo, hi) if n > d)


def expected(query: str, n: int) -> int:
    """Return how many entries a listing of ``query`` must hold with ``n`` rows."""
    count = {"limit=10000": n, "prefix": _in_dirs(n, 42, 43),
             "delimiter": min(n, DIRS), "deep marker": _in_dirs(n, 90, DIRS)}[query]
    return min(count, 10000)


def _length_is(n: int) -> Callable[[int, bytes], bool]:
    def check(_: int, body: bytes) -> bool:
        return len(json.loads(body)) == n if body else n == 0
    return check


def server_cpu(server: Server) -> float:
    """Return the server process' CPU seconds so far (all threads)."""
    usage = procstat.snapshot([server.pid]).get(server.pid)
    return usage.cpu if usage is not None else 0.0


def put_sample(server: Server, start: int, stop: int, seconds: float) -> loadgen.Result:
    """PUT rows ``[start, stop)`` one per request over 16 connections."""
    reqs = [loadgen.Request("PUT", server.path(row_name(i)), tuple(row_headers(i).items()))
            for i in range(start, stop)]
    res = loadgen.run_loop(loadgen.run("127.0.0.1", server.port, reqs, 16,
                                       expect=(201,), time_limit=seconds))
    if res.failed or res.ok != stop - start:
        raise RuntimeError(f"{server.name} row PUTs: {res.ok} ok, {res.failed} failed "
                           f"{res.statuses} (raise --budget or lower --sample)")
    return res


def list_once(server: Server, query: str, n: int, requests: int,
              seconds: float) -> loadgen.Result:
    """GET one listing ``requests`` times, sequentially; check every answer's length."""
    reqs = [loadgen.Request("GET", f"{server.path()}?{QUERIES[query]}")] * requests
    res = loadgen.run_loop(loadgen.run("127.0.0.1", server.port, reqs, 1, expect=(200,),
                                       verify=_length_is(expected(query, n)),
                                       time_limit=seconds))
    if res.failed or not res.ok:
        raise RuntimeError(f"{server.name} listing {query!r}: {res.failed} failed "
                           f"{res.statuses}")
    return res


@dataclass(frozen=True)
class Options:
    """Command-line options."""

    sizes: tuple[int, ...]
    budget: float
    requests: int
    sample: int
    batch: int
    plot: Path
    json_path: Path | None
    keep: bool


def measure_size(servers: dict[str, Server], done: int, size: int,
                 opts: Options) -> dict[str, Point]:
    """Grow both containers from ``done`` to ``size`` rows and measure them."""
    sample = min(opts.sample, size - done)
    points = {name: Point(size) for name in servers}
    for name, srv in servers.items():
        if size - sample > done:
            secs = srv.load(done, size - sample, opts.batch)
            points[name].bulk_rows_per_s = (size - sample - done) / secs
            print(f"  {name}: bulk-loaded {size - sample - done:,} rows in {secs:.1f} s",
                  flush=True)
    for name, srv in servers.items():
        cpu = server_cpu(srv)
        res = put_sample(srv, size - sample, size, 120.0)
        points[name].put_cpu_ms = 1000 * (server_cpu(srv) - cpu) / res.ok
        points[name].put_rows_per_s = res.ops
        points[name].put_p99_ms = res.percentile(99)
    for query in QUERIES:
        for name, srv in servers.items():
            list_once(srv, query, size, 1, 300.0)  # warm-up (Swift merges pending rows)
            cpu = server_cpu(srv)
            res = list_once(srv, query, size, opts.requests, 60.0)
            points[name].listing_cpu_ms[query] = 1000 * (server_cpu(srv) - cpu) / res.ok
            points[name].listing_ms[query] = (res.percentile(50),
                                              res.percentile(99))
    for name, srv in servers.items():
        points[name].disk_bytes_per_row = srv.disk_bytes() / size
        points[name].rss_mib = rss_bytes(srv.pid) / (1 << 20)
    return points


def ratio(a: float, b: float) -> str:
    """Return ``a / b`` as ``2.5x`` (a dash when ``b`` is 0: below /proc's 10 ms tick)."""
    return f"{a / b:.1f}{TIMES}" if b else "-"


def print_table(results: dict[str, list[Point]]) -> None:
    """Print the Markdown table of the run."""
    print("\n| rows | measure | nubis (LMDB) | Swift 2.38.3 (SQLite) | ratio |")
    print("|---:|---|---:|---:|---:|")
    for nub, swi in zip(results["nubis"], results["swift"], strict=True):
        rows = label(nub.rows)
        print(f"| {rows} | row PUT, c16 (server CPU/row) | {nub.put_rows_per_s:,.0f} rows/s "
              f"({nub.put_cpu_ms:.2f} ms) | {swi.put_rows_per_s:,.0f} rows/s "
              f"({swi.put_cpu_ms:.2f} ms) "
              f"| {ratio(nub.put_rows_per_s, swi.put_rows_per_s)} |")
        for query in QUERIES:
            n50, n99 = nub.listing_ms[query]
            s50, s99 = swi.listing_ms[query]
            ncpu, scpu = nub.listing_cpu_ms[query], swi.listing_cpu_ms[query]
            print(f"| {rows} | GET {query}: p50 / p99 (server CPU) | {n50:.1f} / {n99:.1f} ms "
                  f"({ncpu:.1f} ms) | {s50:.1f} / {s99:.1f} ms ({scpu:.1f} ms) "
                  f"| {ratio(s50, n50)} ({ratio(scpu, ncpu)}) |")
        print(f"| {rows} | disk per row; RSS | {nub.disk_bytes_per_row:.0f} B; "
              f"{nub.rss_mib:.0f} MiB | {swi.disk_bytes_per_row:.0f} B; "
              f"{swi.rss_mib:.0f} MiB | |")
    print("\nbulk load (not comparable: nubis over HTTP, Swift straight into its broker): "
          + "; ".join(f"{label(n.rows)}: nubis {n.bulk_rows_per_s:,.0f} rows/s, "
                      f"Swift {s.bulk_rows_per_s:,.0f} rows/s"
                      for n, s in zip(results["nubis"], results["swift"], strict=True)
                      if n.bulk_rows_per_s))


def plot(results: dict[str, list[Point]], path: Path) -> None:
    """Draw listing p50 and row-PUT rate against container size for both systems."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = dict(zip(QUERIES, ("tab:blue", "tab:orange", "tab:green", "tab:red"),
                      strict=True))
    for system, style in (("nubis", "-o"), ("swift", "--s")):
        points = results[system]
        xs = [p.rows for p in points]
        for query in QUERIES:
            left.plot(xs, [p.listing_ms[query][0] for p in points], style,
                      color=colors[query], label=f"{system}: {query}")
            middle.plot(xs, [p.listing_cpu_ms[query] for p in points], style,
                        color=colors[query], label=f"{system}: {query}")
        right.plot(xs, [p.put_rows_per_s for p in points], style, color="black",
                   label=system)
    left.set(xscale="log", yscale="log", xlabel="rows in the container",
             ylabel="listing p50 (ms)", title="Container GET, limit 10,000")
    middle.set(xscale="log", yscale="log", xlabel="rows in the container",
               ylabel="server CPU per listing (ms)", title="Container GET: server CPU")
    right.set(xscale="log", xlabel="rows in the container", ylabel="rows/s",
              title="Single-row PUT, 16 connections")
    right.set_ylim(bottom=0)
    left.legend(fontsize=7, ncol=2)
    middle.legend(fontsize=7, ncol=2)
    right.legend()
    for ax in (left, middle, right):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Container server cost vs size: nubis (LMDB, solid) vs Swift 2.38.3 "
                 "(SQLite, dashed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot: {path}")


def run(opts: Options) -> dict[str, list[Point]]:
    """Start both servers, grow the containers size by size, stop the servers."""
    scratch = Path(tempfile.mkdtemp(prefix="nubis-bench-scale-"))
    servers: dict[str, Server] = {"nubis": NubisServer(scratch / "nubis"),
                                  "swift": SwiftServer(scratch / "swift")}
    results: dict[str, list[Point]] = {name: [] for name in SYSTEMS}
    t0 = time.monotonic()
    try:
        for srv in servers.values():
            srv.start()
            srv.create_container()
        done = 0
        for size in sorted(opts.sizes):
            if time.monotonic() - t0 > opts.budget:
                print(f"budget of {opts.budget:.0f} s spent: {label(size)} and up skipped")
                break
            print(f"{label(size)} rows:", flush=True)
            for name, point in measure_size(servers, done, size, opts).items():
                results[name].append(point)
            done = size
    finally:
        for srv in servers.values():
            srv.stop()
        if not opts.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"scratch kept: {scratch}")
    return results


def parse_args(argv: list[str]) -> Options:
    """Parse the command line."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench scale")
    ap.add_argument("--sizes", default="10k,100k,1M",
                    help="container sizes in rows, ascending (default 10k,100k,1M)")
    ap.add_argument("--budget", type=float, default=3600.0,
                    help="stop growing after this many seconds (default 3600)")
    ap.add_argument("--requests", type=int, default=20,
                    help="listing requests per query and size (default 20)")
    ap.add_argument("--sample", type=int, default=2000,
                    help="single-row PUTs per size (default 2000)")
    ap.add_argument("--batch", type=int, default=5000, help="rows per bulk batch")
    ap.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "scale.png",
                    help="where to write the PNG (default bench/scale.png)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = ap.parse_args(argv)
    sizes = tuple(parse_size(s) for s in a.sizes.split(",") if s.strip())
    if not sizes or min(sizes) < 1:
        ap.error("--sizes needs positive row counts")
    return Options(sizes, a.budget, max(1, a.requests), max(1, a.sample), max(1, a.batch),
                   a.plot, a.json, a.keep)


def main(argv: list[str]) -> int:
    """Run the benchmark and print the table."""
    opts = parse_args(argv)
    results = run(opts)
    if not results["nubis"]:
        return 1
    print_table(results)
    plot(results, opts.plot)
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps({k: [asdict(p) for p in v]
                                              for k, v in results.items()}, indent=1))
    return 0
