"""The root of nubis's exception tree.

Each package derives its own tree from :class:`NubisError`; each API maps those
exceptions to HTTP in exactly one place.
"""

from __future__ import annotations


class NubisError(Exception):
    """Base class for every error nubis raises on purpose."""


class ConfigError(NubisError):
    """A configuration file is missing, malformed, or has a bad key or value.

    The message is one line: ``config.toml: [section] key: what is wrong``.
    """

    exit_code = 2
