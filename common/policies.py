"""Storage policies: how a container's objects are stored (replicated or erasure-coded).

Every policy has an index (what the backend protocol and the on-disk layout
carry), a name and aliases (what clients send in ``X-Storage-Policy``) and its
own object ring (``object.ring`` for index 0, else ``object-<index>.ring``).
Policy classes register themselves by type with :func:`policy_type`, as Swift's
``BaseStoragePolicy.register`` does; :class:`PolicySet` builds them from the
``[cluster.storage_policies.<name>]`` tables by looking the type up in
:data:`POLICY_TYPES` -- callers ask a policy what it is (``is_ec``, ``codec``),
they never branch on its type name.

The default set (:data:`DEFAULT_POLICIES`): ``rep3`` (index 0, default),
``rep2``, ``ec42`` (4+2) and ``ec84`` (8+4), both EC policies with 1 MiB
segments and ISA-L's Cauchy Reed-Solomon (``isa_l_rs_cauchy``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from nubis.fastpath.ec import Codec

#: Policy classes by ``policy_type`` (filled by :func:`policy_type`).
POLICY_TYPES: dict[str, type[StoragePolicy]] = {}

P = TypeVar("P", bound="type[StoragePolicy]")


class PolicyError(ValueError):
    """A storage policy definition is invalid."""


def policy_type(name: str) -> Callable[[P], P]:
    """Register a policy class under its ``type`` name (a class decorator)."""
    def register(cls: P) -> P:
        if name in POLICY_TYPES:
            raise PolicyError(f"policy type {name!r} is registered twice")
        POLICY_TYPES[name] = cls
        cls.policy_type = name
        return cls
    return register


@dataclass(frozen=True)
class PolicyConfig:
    """One ``[cluster.storage_policies.<name>]`` table."""

    index: int = 0
    #: ``replication`` or ``erasure_coding`` (any registered type).
    type: str = "replication"
    aliases: list[str] = field(default_factory=list)
    default: bool = False
    deprecated: bool = False
    #: Replication: copies per object (the ring's replica count).
    replicas: int = 3
    #: Erasure coding: the codec (ISA-L Cauchy Reed-Solomon is the one built).
    ec_type: str = "isa_l_rs_cauchy"
    ec_num_data_fragments: int = 4
    ec_num_parity_fragments: int = 2
    ec_object_segment_size: int = 1024 * 1024


@dataclass(frozen=True)
class StoragePolicy:
    """What every policy has: index, name, aliases, default/deprecated flags."""

    policy_type: ClassVar[str] = ""
    index: int
    name: str
    aliases: tuple[str, ...] = ()
    is_default: bool = False
    is_deprecated: bool = False

    @classmethod
    def from_config(cls, name: str, conf: PolicyConfig) -> StoragePolicy:
        """Build the policy from its config table."""
        return cls(conf.index, name, tuple(conf.aliases), conf.default, conf.deprecated)

    @property
    def is_ec(self) -> bool:
        """Tell whether objects are stored as erasure-coded fragments."""
        return False

    @property
    def ring_replicas(self) -> int:
        """Return how many primaries the policy's object ring has per partition."""
        raise NotImplementedError

    @property
    def ring_name(self) -> str:
        """Return the ring file's stem (``object`` or ``object-<index>``)."""
        return "object" if self.index == 0 else f"object-{self.index}"

    def quorum(self, nodes: int) -> int:
        """Return how many nodes must hold a write before it is acknowledged."""
        raise NotImplementedError

    @property
    def alias_list(self) -> tuple[str, ...]:
        """Return the name followed by the aliases."""
        return (self.name, *[a for a in self.aliases if a != self.name])

    def info(self) -> dict[str, Any]:
        """Return the policy's ``/info`` entry (Swift's public keys only)."""
        out: dict[str, Any] = {"name": self.name, "aliases": ", ".join(self.alias_list)}
        if self.is_default:
            out["default"] = True
        if self.is_deprecated:
            out["deprecated"] = True
        return out


@policy_type("replication")
@dataclass(frozen=True)
class ReplicationPolicy(StoragePolicy):
    """Whole copies of each object on ``replicas`` nodes."""

    replicas: int = 3

    @classmethod
    def from_config(cls, name: str, conf: PolicyConfig) -> StoragePolicy:
        """Build the policy from its config table."""
        if conf.replicas < 1:
            raise PolicyError(f"storage policy {name}: replicas must be >= 1")
        return cls(conf.index, name, tuple(conf.aliases), conf.default, conf.deprecated,
                   conf.replicas)

    @property
    def ring_replicas(self) -> int:
        """Return the replica count."""
        return self.replicas

    def quorum(self, nodes: int) -> int:
        """Return a simple majority (Swift's ``quorum_size``)."""
        return nodes // 2 + 1


@policy_type("erasure_coding")
@dataclass(frozen=True)
class ECPolicy(StoragePolicy):
    """``k`` data + ``m`` parity fragments per segment, one archive per node."""

    ec_type: str = "isa_l_rs_cauchy"
    k: int = 4
    m: int = 2
    segment_size: int = 1024 * 1024

    @classmethod
    def from_config(cls, name: str, conf: PolicyConfig) -> StoragePolicy:
        """Build the policy from its config table (checked like Swift's)."""
        k, m = conf.ec_num_data_fragments, conf.ec_num_parity_fragments
        if conf.ec_type != "isa_l_rs_cauchy":
            raise PolicyError(f"storage policy {name}: ec_type {conf.ec_type!r} is not "
                              "available (isa_l_rs_cauchy is)")
        if k < 1 or m < 1 or k + m > 64:
            raise PolicyError(f"storage policy {name}: need 1 <= k, 1 <= m, k + m <= 64")
        if conf.ec_object_segment_size < 1:
            raise PolicyError(f"storage policy {name}: ec_object_segment_size must be > 0")
        return cls(conf.index, name, tuple(conf.aliases), conf.default, conf.deprecated,
                   conf.ec_type, k, m, conf.ec_object_segment_size)

    @property
    def is_ec(self) -> bool:
        """Return True."""
        return True

    @property
    def ring_replicas(self) -> int:
        """Return ``k + m``: one fragment archive per primary."""
        return self.k + self.m

    def quorum(self, nodes: int) -> int:
        """Return ``k + 1`` (Swift's EC quorum for Reed-Solomon)."""
        del nodes
        return self.k + 1

    @cached_property
    def codec(self) -> Codec:
        """Return the policy's (shared, thread-safe) ISA-L codec."""
        return Codec(self.k, self.m)

    def fragment_size(self, segment_len: int) -> int:
        """Return the size of each fragment of a segment of ``segment_len`` bytes."""
        return -(-segment_len // self.k) if segment_len else 0

    def segments(self, length: int) -> list[int]:
        """Return the lengths of the segments of an object of ``length`` bytes."""
        full, tail = divmod(length, self.segment_size)
        return [self.segment_size] * full + ([tail] if tail else [])

    def archive_size(self, length: int) -> int:
        """Return the size of one fragment archive of an object of ``length`` bytes."""
        return sum(self.fragment_size(s) for s in self.segments(length))


def _rep(index: int, replicas: int, default: bool = False) -> PolicyConfig:
    return PolicyConfig(index=index, type="replication", replicas=replicas, default=default)


def _ec(index: int, k: int, m: int) -> PolicyConfig:
    return PolicyConfig(index=index, type="erasure_coding", ec_num_data_fragments=k,
                        ec_num_parity_fragments=m)


#: The policies of a default cloud.
DEFAULT_POLICIES: dict[str, PolicyConfig] = {
    "rep3": _rep(0, 3, default=True),
    "rep2": _rep(1, 2),
    "ec42": _ec(2, 4, 2),
    "ec84": _ec(3, 8, 4),
}


class PolicySet:
    """The cluster's storage policies, by index and by (case-insensitive) name or alias."""

    def __init__(self, policies: list[StoragePolicy]) -> None:
        self.by_index = {p.index: p for p in policies}
        if len(self.by_index) != len(policies):
            raise PolicyError("two storage policies share an index")
        if 0 not in self.by_index:
            raise PolicyError("storage policy index 0 is missing")
        self._by_name: dict[str, StoragePolicy] = {}
        for p in policies:
            for alias in p.alias_list:
                if alias.lower() in self._by_name:
                    raise PolicyError(f"storage policy name {alias!r} is used twice")
                self._by_name[alias.lower()] = p
        defaults = [p for p in policies if p.is_default]
        if len(defaults) > 1:
            raise PolicyError("more than one storage policy is the default")
        if not defaults:  # as Swift: policy 0 is the default unless one is named
            self.by_index[0] = replace(self.by_index[0], is_default=True)
        self.default = defaults[0] if defaults else self.by_index[0]
        if self.default.is_deprecated:
            raise PolicyError("the default storage policy cannot be deprecated")

    @classmethod
    def from_config(cls, tables: dict[str, PolicyConfig]) -> PolicySet:
        """Build the policies of ``[cluster.storage_policies]`` through the registry."""
        out = []
        for name, conf in tables.items():
            kind = POLICY_TYPES.get(conf.type)
            if kind is None:
                raise PolicyError(f"storage policy {name}: unknown type {conf.type!r} "
                                  f"(known: {', '.join(sorted(POLICY_TYPES))})")
            out.append(kind.from_config(name, conf))
        return cls(sorted(out, key=lambda p: p.index))

    def __iter__(self) -> Iterator[StoragePolicy]:
        return iter(self.by_index.values())

    def get(self, index: int) -> StoragePolicy | None:
        """Return the policy with ``index``, if any."""
        return self.by_index.get(index)

    def by_name(self, name: str) -> StoragePolicy | None:
        """Return the policy named (or aliased) ``name``, case-insensitively."""
        return self._by_name.get(name.lower())

    def info(self) -> list[dict[str, Any]]:
        """Return ``/info``'s ``policies`` list (deprecated ones left out, as Swift)."""
        return [p.info() for p in self if not p.is_deprecated]

    def names(self) -> dict[int, str]:
        """Return ``index -> name``."""
        return {p.index: p.name for p in self}
