"""``nubis ring ...``: the ring builder, as a sub-command of ``nubis``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``ring`` sub-command."""
    p = sub.add_parser("ring", help="ring builder (same as nubis-ring-builder)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nubis.ring.cli import main

    return main(list(args.args))
