"""Build nubis, compiling the Cython hot paths when possible.

Every compiled module under ``fastpath/`` has a pure-Python twin, so a failed
compile is a warning, not an error: the package still installs and works.
``NUBIS_DEBUG_BUILD=1`` builds with Cython line tracing and HTML annotations.
"""

from __future__ import annotations

import glob
import os
import sys
import warnings

from setuptools import setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("NUBIS_DEBUG_BUILD") == "1"
#: C libraries a kernel links against (module name -> libraries; isal: Debian
#: libisal-dev, crypto: OpenSSL's libcrypto from libssl-dev).
KERNEL_LIBRARIES: dict[str, list[str]] = {"_ec_c": ["isal"], "_crc_c": ["isal"],
                                          "_sigv4_c": ["crypto"]}
#: C macros of one kernel (OpenSSL 3 marks the SHA256_* calls deprecated, not removed).
KERNEL_MACROS: dict[str, list[tuple[str, str | None]]] = {
    "_sigv4_c": [("OPENSSL_SUPPRESS_DEPRECATED", None)]}


class OptionalBuildExt(build_ext):
    """Build extensions, degrading to the pure-Python twins on failure."""

    def run(self) -> None:
        """Build all extensions; warn instead of failing."""
        try:
            super().run()
        except Exception as exc:
            self._warn(exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        """Build one extension; warn instead of failing."""
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc, ext.name)

    @staticmethod
    def _warn(exc: BaseException, name: str = "extensions") -> None:
        msg = (
            f"nubis: could not compile {name} ({exc}); "
            "falling back to the pure-Python implementation"
        )
        warnings.warn(msg, stacklevel=1)
        print("WARNING: " + msg, file=sys.stderr)


def _extensions() -> list:  # type: ignore[type-arg]
    try:
        import numpy
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError as exc:
        print(f"WARNING: nubis: Cython/numpy missing ({exc}); pure Python only", file=sys.stderr)
        return []
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    directives = {"language_level": "3", "boundscheck": False, "wraparound": False,
                  "cdivision": True, "embedsignature": True}
    if DEBUG:
        macros.append(("CYTHON_TRACE_NOGIL", "1"))
        directives.update({"linetrace": True, "binding": True})
    exts = []
    for pyx in sorted(glob.glob("fastpath/*.pyx")):
        mod = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(
            f"nubis.fastpath.{mod}", [pyx],
            include_dirs=[numpy.get_include(), "fastpath"],
            define_macros=macros + KERNEL_MACROS.get(mod, []),
            libraries=KERNEL_LIBRARIES.get(mod, []),
            extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
        ))
    try:
        return cythonize(exts, compiler_directives=directives, annotate=DEBUG, quiet=True)
    except Exception as exc:
        print(f"WARNING: nubis: cythonize failed ({exc}); pure Python only", file=sys.stderr)
        return []


# Top-level folders install under the single import root ``nubis``.
PACKAGE_ROOTS = {"nubis": "nubis", "nubis.common": "common", "nubis.api": "api",
                 "nubis.daemons": "daemons", "nubis.ring": "ring",
                 "nubis.fastpath": "fastpath", "nubis.bench": "bench"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, dirs = [], {}
    for name, root in PACKAGE_ROOTS.items():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
            if "__init__.py" not in filenames:
                continue
            rel = os.path.relpath(dirpath, root)
            pkg = name if rel == "." else name + "." + rel.replace(os.sep, ".")
            packages.append(pkg)
            dirs[pkg] = dirpath
    return packages, dirs


_PACKAGES, _PACKAGE_DIRS = _packages()

setup(
    packages=_PACKAGES,
    package_dir=_PACKAGE_DIRS,
    package_data={"nubis.fastpath": ["*.pyx", "*.pxd", "*.h"], "nubis.bench": ["*.c"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
