"""The group committer over a real LMDB environment."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nubis.daemons.storage.lmdbstore import GroupCommitter, open_env

from .stack import run


@pytest.mark.parametrize("in_loop", [False, True])
def test_group_commit_batches_and_isolates_failures(tmp_path: Path, in_loop: bool) -> None:
    env = open_env(tmp_path / "env", ("d",), map_mib=64, sync=not in_loop)
    db = env.open_db(b"d")
    pool = ThreadPoolExecutor(2)

    async def go() -> None:
        gc = GroupCommitter(env, pool, in_loop=in_loop)

        def put(i: int) -> Any:
            def fn(txn: Any) -> int:
                if i == 13:
                    raise ValueError("unlucky")
                txn.put(b"k%03d" % i, b"v%d" % i, db=db)
                return i
            return fn

        results = await asyncio.gather(*(gc.submit(put(i)) for i in range(50)),
                                       return_exceptions=True)
        assert isinstance(results[13], ValueError)
        assert [r for i, r in enumerate(results) if i != 13] == [i for i in range(50) if i != 13]
        assert gc.commits < 50 and gc.writes == 50
        gc.submit_lazy(lambda txn: txn.put(b"lazy", b"1", db=db))
        await gc.close()
        await gc.sync()
        with env.begin(db=db) as txn:
            assert txn.get(b"k049") == b"v49" and txn.get(b"k013") is None
            assert txn.get(b"lazy") == b"1"

    try:
        run(go())
    finally:
        pool.shutdown()
        env.close()
