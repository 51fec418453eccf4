import os
import subprocess
import sys

import nubis.fastpath as fastpath
from nubis.fastpath import crc, ec, md5lanes, sigv4


def test_compiled_implementation_loaded() -> None:
    """A normal install must load the Cython kernels, not the fallback."""
    if os.environ.get("NUBIS_NO_EXTENSIONS"):
        assert fastpath.IMPLEMENTATION == "python"
        assert ec.IMPLEMENTATION == "python"
        assert crc.IMPLEMENTATION == "python"
        assert md5lanes.IMPLEMENTATION == "python"
        assert sigv4.IMPLEMENTATION == "python"
    else:
        assert fastpath.IMPLEMENTATION == "cython", "compiled fastpath did not load"
        assert ec.IMPLEMENTATION == "cython", "compiled EC kernel (ISA-L) did not load"
        assert crc.IMPLEMENTATION == "cython", "compiled CRC kernel (ISA-L) did not load"
        assert md5lanes.IMPLEMENTATION == "cython", "compiled MD5 lanes kernel did not load"
        assert sigv4.IMPLEMENTATION == "cython", "compiled SigV4 kernel (OpenSSL) did not load"


def test_no_extensions_forces_python() -> None:
    env = dict(os.environ, NUBIS_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", "import nubis.fastpath as f; print(f.IMPLEMENTATION)"],
        env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"
