"""Host-name based addressing and the cross-domain policy (Swift's domain_remap, crossdomain).

:class:`DomainRemap` turns ``Host: <container>.<account>.<storage domain>`` (or
``<account>.<storage domain>``) into the path ``/v1/<account>/<container>/...``,
so a container can be served as ``http://site.AUTH-test.swift.localhost/``;
``AUTH-test`` becomes ``AUTH_test`` as in Swift. The rewritten request is
authenticated like any other. ``Location`` answers are mapped back to the host's
own paths. :func:`crossdomain_response` answers ``GET /crossdomain.xml``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError

#: Swift's default ``cross_domain_policy``.
DEFAULT_CROSS_DOMAIN_POLICY = '<allow-access-from domain="*" secure="false" />'


def crossdomain_response(policy: str) -> Resp:
    """Return the ``/crossdomain.xml`` document for ``policy`` (Swift's format)."""
    body = ('<?xml version="1.0"?>\n'
            '<!DOCTYPE cross-domain-policy SYSTEM '
            '"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >\n'
            f"<cross-domain-policy>\n{policy}\n</cross-domain-policy>")
    return Resp(200, {"Content-Type": "application/xml; charset=UTF-8"}, body.encode())


def _quote(label: str) -> str:
    """Return a host label as a path piece (header text arrives as latin-1 of its bytes)."""
    try:
        return urllib.parse.quote(label.encode("latin-1"))
    except UnicodeEncodeError:
        return urllib.parse.quote(label)


def _requote(raw: str) -> str:
    """Return a raw path (latin-1 of its bytes) quoted the way Swift quotes paths."""
    return urllib.parse.quote(urllib.parse.unquote_to_bytes(raw.encode("latin-1", "replace")))


@dataclass(frozen=True)
class Remapped:
    """A request whose host named its account (and container)."""

    requested: str
    path: str

    def fix_location(self, resp: Resp) -> Resp:
        """Map the rewritten path in ``Location`` headers back to the requested one."""
        rewritten = re.escape(_requote(self.path))
        pattern = re.compile(rf"^(https?://[^/]+){rewritten}(.*)$")
        requested = _requote(self.requested)
        for name in ("Location", "Content-Location"):
            value = resp.headers.get(name)
            if value:
                resp.headers[name] = pattern.sub(
                    lambda m: m.group(1) + requested + m.group(2), value)
        return resp


@dataclass(frozen=True)
class DomainRemap:
    """The storage domains and the reseller prefixes account names may carry."""

    #: Suffixes, each starting with a dot (``.swift.localhost``).
    domains: tuple[str, ...]
    reseller_prefixes: tuple[str, ...] = ("AUTH",)
    default_reseller_prefix: str = ""

    @classmethod
    def of(cls, domains: list[str], reseller_prefixes: list[str],
           default_reseller_prefix: str) -> DomainRemap | None:
        """Build from config; None when no storage domain is configured."""
        names = tuple(d if d.startswith(".") else "." + d for d in domains if d.strip("."))
        if not names:
            return None
        return cls(names, tuple(reseller_prefixes), default_reseller_prefix)

    def remap(self, host: str, raw_path: str) -> Remapped | None:
        """Return the path ``host`` stands for, None when it is not a storage domain.

        Raises:
            HTTPError: 400 when the host has more than two labels before the domain.
        """
        name = host.rsplit(":", 1)[0] if ":" in host else host
        if not name.endswith(self.domains):  # PERF: one C call for plain requests
            return None
        domain = next(d for d in self.domains if name.endswith(d))
        labels = name[:-len(domain)].strip(".").split(".")
        if len(labels) == 2:
            container: str | None = labels[0]
            account = labels[1]
        elif len(labels) == 1:
            container, account = None, labels[0]
        else:
            raise HTTPError(400, "Bad domain in host header",
                            headers={"Content-Type": "text/plain"})
        real = self._account(account)
        if not real:
            return None
        pieces = ["", "v1", _quote(real)]
        if container:
            pieces.append(_quote(container))
        pieces.append(raw_path[1:] if raw_path.startswith("/") else raw_path)
        return Remapped(raw_path, "/".join(pieces))

    def _account(self, account: str) -> str | None:
        """Restore an account's reseller prefix (``auth-x`` -> ``AUTH_x``); None: not ours."""
        if not self.reseller_prefixes:
            return account
        if "_" not in account and "-" in account:
            account = account.replace("-", "_", 1)
        given = account.split("_", 1)[0].lower()
        for real in self.reseller_prefixes:
            if given == real.lower():
                return real + account[len(real):]
        if self.default_reseller_prefix:
            return f"{self.default_reseller_prefix}_{account}"
        return None
