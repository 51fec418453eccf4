"""The account server: account records, container rows and listings over LMDB.

Paths: ``/<dev>/<part>/<account>`` (PUT/HEAD/GET/POST/DELETE) and
``/<dev>/<part>/<account>/<container>`` (container stats reports from the
container servers: ``X-Put-Timestamp``, ``X-Delete-Timestamp``,
``X-Object-Count``, ``X-Bytes-Used``, ``X-Backend-Storage-Policy-Index``).
Replies follow Swift's account server: PUT 201/202 (403 if deleted), HEAD
204, GET 200 (204 for an empty plain listing), POST 204, DELETE 204, 404 for
a missing account; container reports 201 (live) / 204 (deleted). Unlike
Swift, the first container report creates the account (container updates are
asynchronous here, so the account must not depend on their order).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nubis.common import backend as hdr
from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import Request, Response, plain
from nubis.daemons.storage import protocol as proto
from nubis.daemons.storage.accountdb import (
    DBS,
    AccountDB,
    AccountDeletedError,
    AccountInfo,
    AccountNotFoundError,
    unpack_row,
)
from nubis.daemons.storage.config import StorageConfig
from nubis.daemons.storage.dbcommon import (
    metadata_headers,
    parse_listing,
    render_listing,
    timestamp_or,
)
from nubis.daemons.storage.lmdbstore import GroupCommitter
from nubis.daemons.storage.protocol import ZERO, Timestamp
from nubis.daemons.storage.runner import run_node
from nubis.daemons.storage.server import (
    INSUFFICIENT_STORAGE,
    DatabaseServer,
    method_not_allowed,
)


def _account_headers(info: AccountInfo) -> list[tuple[str, str]]:
    headers = [("X-Account-Container-Count", str(info.containers)),
               ("X-Account-Object-Count", str(info.objects)),
               ("X-Account-Bytes-Used", str(info.nbytes)),
               ("X-Timestamp", Timestamp.parse(info.created or info.put_ts).normal),
               ("X-PUT-Timestamp", Timestamp.parse(info.put_ts).normal),
               ("X-Backend-Timestamp", info.created or info.put_ts)]
    headers.extend(metadata_headers(info.meta))
    return headers


def _policy_headers(stats: dict[int, list[int]] | None,
                    names: dict[int, str]) -> list[tuple[str, str]]:
    """Return Swift's ``X-Account-Storage-Policy-<Name>-*`` usage headers."""
    out: list[tuple[str, str]] = []
    for policy, (containers, objects, nbytes) in sorted((stats or {}).items()):
        name = names.get(policy)
        if name is None:
            continue
        base = f"X-Account-Storage-Policy-{name}-"
        out += [(base + "Container-Count", str(containers)),
                (base + "Object-Count", str(objects)), (base + "Bytes-Used", str(nbytes))]
    return out


def policy_names(value: str) -> dict[int, str]:
    """Parse ``X-Backend-Storage-Policy-Names`` (``0:rep3,1:rep2``); bad items are skipped."""
    out: dict[int, str] = {}
    for item in value.split(","):
        idx, _, name = item.partition(":")
        if idx.strip().isdigit() and name.strip():
            out[int(idx)] = name.strip()
    return out


def _row_maker(names: dict[int, str]) -> Callable[[str, bytes], dict[str, Any]]:
    """Return the JSON row of a container; ``storage_policy`` when its policy is known."""
    def row(name: str, raw: bytes) -> dict[str, Any]:
        put_ts, _, count, nbytes, policy = unpack_row(raw)
        out = {"name": name, "count": count, "bytes": nbytes,
               "last_modified": Timestamp.parse(put_ts).isoformat}
        if policy in names:
            out["storage_policy"] = names[policy]
        return out
    return row


class AccountServer(DatabaseServer[AccountDB]):
    """Handle backend account requests for the devices of one node."""

    port_name = "account_port"
    thread_name = "acctio"
    env_name = "accounts.lmdb"
    dbs = DBS

    @classmethod
    def io_threads(cls, storage: StorageConfig) -> int:
        """Return 2: account writes are rare and small."""
        return 2

    def make_db(self, path: Path, env: Any, committer: GroupCommitter) -> AccountDB:
        """Wrap a device's environment."""
        return AccountDB(env, committer)

    scope_names = 1

    def scope_key(self, names: list[str]) -> bytes:
        """Return an account's record key."""
        return names[0].encode()

    async def dispatch(self, req: Request) -> Response:
        """Answer one backend request."""
        if req.method == "POST":
            answer = await self.replication_request(req)
            if answer is not None:
                return answer
        p = proto.parse_path(req.path, 1, 2, proto.allows_reserved(req.headers))
        db = self.devices.get(p.device)
        if db is None:
            return INSUFFICIENT_STORAGE
        if p.container:
            if req.method != "PUT":
                return method_not_allowed("PUT")
            return await self._container_report(req, db, p)
        return await self._account(req, db, p)

    async def _container_report(self, req: Request, db: AccountDB,
                                p: proto.BackendPath) -> Response:
        hdrs = req.headers
        put_ts = timestamp_or(hdrs.get(hdr.X_PUT_TIMESTAMP), ZERO)
        del_ts = timestamp_or(hdrs.get(hdr.X_DELETE_TIMESTAMP), ZERO)
        if put_ts == ZERO and del_ts == ZERO:
            put_ts = proto.parse_timestamp(hdrs)
        try:
            live = await db.put_container(
                p.account, p.container, put_ts.internal,
                del_ts.internal if del_ts != ZERO else "",
                proto.parse_int_header(hdrs, hdr.X_OBJECT_COUNT),
                proto.parse_int_header(hdrs, hdr.X_BYTES_USED), proto.policy_index(hdrs))
        except AccountDeletedError:
            return plain(404, "Not Found")
        return plain(201, "") if live else Response(204)

    async def _account(self, req: Request, db: AccountDB, p: proto.BackendPath) -> Response:
        method = req.method
        if method == "GET" or method == "HEAD":
            return self._get(req, db, p)
        meta = proto.metadata_from_headers(req.headers, proto.ACCOUNT_META_PREFIXES,
                                       proto.ACCOUNT_STORED_HEADERS)
        if method == "PUT":
            ts = proto.parse_timestamp(req.headers).internal
            try:
                created = await db.put_account(p.account, ts, meta)
            except AccountDeletedError:
                return plain(403, "Recently deleted")
            return plain(201 if created else 202, "")
        if method == "POST":
            ts = proto.parse_timestamp(req.headers).internal
            try:
                await db.post_account(p.account, ts, meta)
            except AccountNotFoundError:
                return plain(404, "Not Found")
            return Response(204)
        if method == "DELETE":
            ts = proto.parse_timestamp(req.headers).internal
            try:
                await db.delete_account(p.account, ts)
            except AccountNotFoundError:
                return plain(404, "Not Found")
            return Response(204)
        return method_not_allowed("DELETE, GET, HEAD, POST, PUT")

    def _get(self, req: Request, db: AccountDB, p: proto.BackendPath) -> Response:
        info = db.info(p.account)
        if info is None:
            return plain(404, "Not Found")
        if info.deleted:
            return plain(404, "Not Found", [("X-Account-Status", "Deleted")])
        headers = _account_headers(info)
        names = policy_names(req.headers.get(hdr.X_POLICY_NAMES, ""))
        if names:
            headers.extend(_policy_headers(db.policy_stats(p.account), names))
        if req.method == "HEAD":
            return Response(204, [*headers, ("Content-Type", "text/plain; charset=utf-8")])
        listing = parse_listing(req, self.storage.listing_limit)
        entries = db.listing(p.account, listing.params)
        return render_listing(entries, listing.content_type, headers, "account", p.account,
                              "container",
                              _row_maker(names))


def run(storage: StorageConfig, cluster: ClusterConfig, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon account-server``); node from the environment."""
    del once
    return run_node(AccountServer, storage, cluster)
