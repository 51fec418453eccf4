"""Password hashing (argon2id) and the failed-login limiter.

Hashing cost is the dominant cost of password authentication (about 15-25 ms
per check with the default OWASP parameters), which is why services verify
*tokens* locally instead of passwords. The limiter refuses further password
attempts for a user or a source address after too many failures inside a
sliding window — before any hash is computed, so a flood cannot burn CPU.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from nubis.api.identity.config import IdentityConfig


class PasswordHasher:
    """argon2id with configurable cost."""

    def __init__(self, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1) -> None:
        self._argon = _Argon2(time_cost=time_cost, memory_cost=memory_kib,
                              parallelism=parallelism, type=Type.ID)

    @classmethod
    def from_config(cls, cfg: IdentityConfig) -> PasswordHasher:
        """Return a hasher with the ``[identity]`` section's argon2 cost."""
        return cls(cfg.password_time_cost, cfg.password_memory_kib, cfg.password_parallelism)

    def hash(self, password: str) -> str:
        """Return the encoded hash of ``password``."""
        return self._argon.hash(password)

    def verify(self, encoded: str | None, password: str) -> bool:
        """Return whether ``password`` matches ``encoded`` (False for no hash)."""
        if not encoded:
            return False
        try:
            return bool(self._argon.verify(encoded, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


class FailureLimiter:
    """Count failures per key in a sliding window; refuse once over the limit."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100000) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, key: str) -> bool:
        """Return whether ``key`` has reached the failure limit in the window."""
        if self.window <= 0:
            return False
        q = self._failures.get(key)
        if not q:
            return False
        horizon = self.clock() - self.window
        while q and q[0] < horizon:
            q.popleft()
        if not q:
            del self._failures[key]
            return False
        return len(q) >= self.limit

    def fail(self, key: str) -> None:
        """Record one failure for ``key``."""
        if self.window <= 0:
            return
        if len(self._failures) >= self.max_keys:
            self._failures.clear()
        q = self._failures.setdefault(key, deque(maxlen=self.limit))
        q.append(self.clock())

    def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a successful login)."""
        self._failures.pop(key, None)
