"""Drive ``bench/loadgen.c``, the compiled load generator, with pre-built requests.

The Python client of :mod:`nubis.bench.loadgen` costs ~50 µs of CPU per request
on a 2-core host: as much as a quarter of what a 4 KiB GET costs the servers it
measures, taken from them, and more from whichever system answers faster. The
compiled client sends the very same requests (built and signed in Python before
the clock starts) for a few microseconds each. gcc compiles it into a temp dir at
bench time, as ``bench/ec_ceiling.c``; without gcc the Python client runs.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from nubis.bench import loadgen

SOURCE = Path(__file__).resolve().parent / "loadgen.c"
_NO_CHECK = 0xFFFFFFFF


class Client:
    """The compiled client, built once into a private temp dir."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir

    @classmethod
    def build(cls) -> Client | None:
        """Compile ``loadgen.c``; return None without gcc or when it does not build."""
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            return None
        workdir = Path(tempfile.mkdtemp(prefix="nubis-loadgen-"))
        binary = workdir / "loadgen"
        done = subprocess.run([gcc, "-O2", "-o", str(binary), str(SOURCE)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(workdir, ignore_errors=True)
            return None
        return cls(binary, workdir)

    def close(self) -> None:
        """Remove the binary and its scratch files."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, host: str, port: int, requests: Sequence[loadgen.Request], concurrency: int,
            expected: Sequence[bytes] | None = None,
            expect: tuple[int, ...] = (200, 201, 202, 204),
            time_limit: float = 600.0) -> loadgen.Result:
        """Send ``requests`` as :func:`loadgen.run` does; ``expected[i]`` is request i's body."""
        reqfile, latfile = self.workdir / "requests", self.workdir / "latencies"
        reqfile.write_bytes(encode(host, port, requests, expected))
        done = subprocess.run(
            [str(self.binary), host, str(port), str(concurrency), str(reqfile), str(latfile),
             str(time_limit), ",".join(str(s) for s in expect)],
            capture_output=True, text=True, check=False, timeout=time_limit + 120)
        if done.returncode != 0:
            raise RuntimeError(f"loadgen failed ({done.returncode}): {done.stderr.strip()}")
        result = parse_output(done.stdout)
        raw = latfile.read_bytes()
        result.latencies = list(struct.unpack(f"<{len(raw) // 8}d", raw))
        return result


def encode(host: str, port: int, requests: Sequence[loadgen.Request],
           expected: Sequence[bytes] | None) -> bytes:
    """Return the requests file the compiled client reads (format in ``loadgen.c``)."""
    out = [b"NLG1", struct.pack("<I", len(requests))]
    for i, req in enumerate(requests):
        raw = loadgen.wire(req, f"{host}:{port}")
        body = expected[i] if expected is not None else None
        payload = len(body) if body is not None and req.method == "GET" else len(req.body)
        out.append(struct.pack("<I", len(raw)))
        out.append(raw)
        if body is None:
            out.append(struct.pack("<II", payload, _NO_CHECK))
        else:
            out.append(struct.pack("<II", payload, len(body)))
            out.append(body)
        out.append(b"\x01" if req.method == "HEAD" else b"\x00")
    return b"".join(out)


def parse_output(text: str) -> loadgen.Result:
    """Return the :class:`loadgen.Result` the compiled client printed."""
    result = loadgen.Result()
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "status":
            result.statuses[int(words[1])] = int(words[2])
        elif words[0] == "seconds":
            result.seconds = float(words[1])
        elif words[0] in ("ok", "failed", "bad_body", "bytes"):
            setattr(result, words[0], int(words[1]))
    return result
