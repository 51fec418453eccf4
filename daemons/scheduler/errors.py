"""The scheduler's exception tree (mapped to HTTP in ``server.py`` and the placement app)."""

from __future__ import annotations

from nubis.common.errors import NubisError


class SchedulerError(NubisError):
    """Base of every scheduler/placement error; ``status`` is its HTTP status."""

    status = 500
    code = "placement.undefined_code"


class BadRequest(SchedulerError):  # noqa: N818 (HTTP status name)
    """The request is malformed or names something impossible."""

    status = 400


class NotFound(SchedulerError):  # noqa: N818 (HTTP status name)
    """A provider, consumer, trait or aggregate does not exist."""

    status = 404


class Conflict(SchedulerError):  # noqa: N818 (HTTP status name)
    """A write lost a race or would break an invariant."""

    status = 409


class ConcurrentUpdate(Conflict):
    """A resource provider or consumer generation did not match."""

    code = "placement.concurrent_update"


class InventoryInUse(Conflict):
    """An inventory with allocations against it cannot be removed."""

    code = "placement.inventory.inuse"


class CapacityExceeded(Conflict):
    """An allocation does not fit the provider's inventory."""


class NoValidHost(SchedulerError):  # noqa: N818 (Nova's name)
    """No host passed the filters; the message says which filter removed how many."""

    status = 409
    code = "scheduler.no_valid_host"

    def __init__(self, reason: str, counts: list[tuple[str, int, int]]) -> None:
        super().__init__(reason)
        #: ``(filter name, hosts removed, hosts that entered the filter)``.
        self.counts = counts
