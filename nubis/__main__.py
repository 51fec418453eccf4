"""Run the operator CLI: ``python -m nubis``."""

from nubis.cli import main

raise SystemExit(main())
