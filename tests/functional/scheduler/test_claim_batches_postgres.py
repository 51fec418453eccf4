"""Batched claims (one transaction, one savepoint per claim) on a real PostgreSQL server.

The tests are imported from ``test_claim_batches``; ``svc`` is overridden to use a
fresh database on a throwaway cluster (:mod:`tests.pg`). On PostgreSQL a failed
statement aborts the transaction, so these also prove that a lost claim (a
duplicate consumer included) is undone by ``ROLLBACK TO SAVEPOINT`` alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.service import SchedulerService
from nubis.daemons.scheduler.store import open_engine

from tests.functional.scheduler.test_claim_batches import (  # noqa: F401
    test_a_lost_claim_rolls_back_alone,
    test_concurrent_callers_are_combined_without_overcommit,
)
from tests.pg import PgCluster, pg_cluster  # noqa: F401

pytestmark = pytest.mark.functional


@pytest.fixture
def svc(pg: PgCluster) -> Iterator[SchedulerService]:
    engine = open_engine(pg.new_database())
    service = SchedulerService(SchedulerConfig(), engine)
    for i in range(3):
        service.report_host(f"node{i}", {"inventories": {
            "VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}, "DISK_GB": {"total": 40}},
            "supported_instances": [["x86_64", "qemu", "hvm"]]})
    yield service
    service.claims.close()
    engine.dispose()
