"""One backend exchange's transport cost: loopback TCP vs a Unix-domain socket.

``python -m nubis.bench loopback [--round-trips N] [--rounds R] [--request B] [--answer B]``

Two processes ping-pong a request of ``--request`` bytes (a 4 KiB PUT's head
and body) and an answer of ``--answer`` bytes over a connected pair, once over
TCP on 127.0.0.1 (``TCP_NODELAY``, as the backend client) and once over
``socketpair(AF_UNIX)``, rounds alternating; it prints wall time and the CPU
of both sides per round trip. It sizes the most a second transport between
the proxy and the storage servers of one host could save per backend exchange.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import time

KINDS = ("tcp", "unix")


def _pair(kind: str) -> tuple[socket.socket, socket.socket]:
    if kind == "unix":
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def _read(sock: socket.socket, size: int) -> None:
    got = 0
    while got < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed")
        got += len(chunk)


def _cpu(who: int) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


def measure(kind: str, round_trips: int, request: int, answer: int) -> dict[str, float]:
    """Return µs per round trip: wall, client CPU and server CPU."""
    client, server = _pair(kind)
    children_before = _cpu(resource.RUSAGE_CHILDREN)
    pid = os.fork()
    if pid == 0:  # the server side: read each request, answer it
        client.close()
        reply = b"a" * answer
        try:
            for _ in range(round_trips):
                _read(server, request)
                server.sendall(reply)
        finally:
            os._exit(0)
    server.close()
    payload = b"r" * request
    start, cpu0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    for _ in range(round_trips):
        client.sendall(payload)
        _read(client, answer)
    wall, cpu1 = time.perf_counter() - start, _cpu(resource.RUSAGE_SELF)
    client.close()
    os.waitpid(pid, 0)
    server_cpu = _cpu(resource.RUSAGE_CHILDREN) - children_before
    scale = 1e6 / round_trips
    return {"wall_us": wall * scale, "client_cpu_us": (cpu1 - cpu0) * scale,
            "server_cpu_us": server_cpu * scale,
            "cpu_us": (cpu1 - cpu0 + server_cpu) * scale}


def main(argv: list[str]) -> int:
    """Measure both transports in alternating rounds; print the best of each."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench loopback")
    ap.add_argument("--round-trips", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--request", type=int, default=4500, help="request bytes")
    ap.add_argument("--answer", type=int, default=200, help="answer bytes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for kind in KINDS:
            got = measure(kind, args.round_trips, args.request, args.answer)
            if kind not in best or got["cpu_us"] < best[kind]["cpu_us"]:
                best[kind] = got
    if args.json:
        print(json.dumps(best))
        return 0
    print(f"{'transport':10} {'wall µs':>9} {'client CPU µs':>14} {'server CPU µs':>14} "
          f"{'CPU µs':>8}")
    for kind in KINDS:
        b = best[kind]
        print(f"{kind:10} {b['wall_us']:9.1f} {b['client_cpu_us']:14.1f} "
              f"{b['server_cpu_us']:14.1f} {b['cpu_us']:8.1f}")
    print(f"unix/tcp CPU per round trip: {best['unix']['cpu_us'] / best['tcp']['cpu_us']:.2f}")
    return 0
