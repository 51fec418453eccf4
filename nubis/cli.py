"""The ``nubis`` operator command line.

Each sub-command lives in its own module and is imported only when it runs, so
``nubis --help`` stays fast and a broken optional component cannot break the
others. A command module exposes ``register(subparsers)`` which adds its parser
and sets ``func`` (called with the parsed namespace, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nubis import __version__

# Sub-command modules, in the order ``--help`` shows them. Add new commands here.
COMMAND_MODULES: tuple[str, ...] = (
    "nubis.commands.ring",
    "nubis.commands.up",
    "nubis.commands.down",
    "nubis.commands.status",
    "nubis.commands.supervise",
    "nubis.commands.units",
    "nubis.commands.daemon",
    "nubis.commands.identity",
    "nubis.commands.image",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="nubis",
        description="nubis: a compact, fast, OpenStack-compatible cloud.",
    )
    parser.add_argument("--version", action="version", version=f"nubis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # a component not installed yet
            print(f"nubis: warning: {name} unavailable: {exc}", file=sys.stderr)
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    result: int = func(args)
    return result
