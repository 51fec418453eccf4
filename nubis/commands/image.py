"""``nubis image ...``: the test image (``nubis up`` uploads it, see ``nubis.bootstrap``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``image`` sub-command and its actions."""
    p = sub.add_parser("image", help="images: build the bootable test image set")
    actions = p.add_subparsers(dest="image_action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build-test", help="build (once; cached in the state dir) the test kernel, ramdisk "
                           "and qcow2 disk from Debian packages, and print them")
    b.add_argument("--state-dir", default="var", help="state directory (default ./var)")
    b.add_argument("--rebuild", action="store_true", help="build again even if cached")
    b.add_argument("--json", action="store_true", help="print the set as JSON")
    b.set_defaults(func=_build_test)


def _build_test(args: argparse.Namespace) -> int:
    from nubis.testimage import TestImageError, build_test_image, default_cache_dir

    try:
        image_set = build_test_image(default_cache_dir(Path(args.state_dir)),
                                     rebuild=args.rebuild)
    except TestImageError as exc:
        print(f"nubis image build-test: {exc}", file=sys.stderr)
        return 1
    if args.json:
        doc = {f.name: {"path": str(f.path), "size": f.size, "md5": f.md5,
                        "sha512": f.sha512, "disk_format": f.disk_format,
                        "container_format": f.container_format}
               for f in image_set.files()}
        print(json.dumps({"images": doc, "cmdline": image_set.cmdline,
                          "kernel_release": image_set.kernel_release}, indent=2))
        return 0
    print(f"kernel {image_set.kernel_release} (package {image_set.kernel_package_version}), "
          f"busybox {image_set.busybox_version}; cmdline: {image_set.cmdline}")
    for f in image_set.files():
        print(f"{f.name:20} {f.disk_format:6} {f.size:>10}  md5 {f.md5}  {f.path}")
    return 0
