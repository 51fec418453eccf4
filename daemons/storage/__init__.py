"""The storage tier: object, container and account servers over LMDB.

Backend protocol (Swift's internal storage protocol; header names live in
:mod:`nubis.common.backend`, shared with the proxy):

* object server (default port 6200):
  ``PUT/GET/HEAD/DELETE/POST /<device>/<partition>/<account>/<container>/<object>``
  with ``X-Timestamp`` (``1700000000.00000`` or ``..._<16 hex offset>``),
  ``X-Backend-Storage-Policy-Index``, ``Content-Length`` or chunked, ``ETag``,
  ``Content-Type``, ``X-Object-Meta-*``, ``X-Delete-At`` and the container
  update headers ``X-Container-Host`` (``ip:port``), ``X-Container-Partition``,
  ``X-Container-Device``. Replies carry ``X-Backend-Timestamp``,
  ``X-Timestamp``, ``ETag``, ``Content-Length``, metadata. 201 on PUT, 204 on
  DELETE, 404 (+ ``X-Backend-Timestamp``) for missing/tombstoned/corrupt
  objects, 409 when the request's timestamp is <= the stored one, 507 when
  the device directory is missing, 422 on ETag mismatch.
* container server (6201): rows ``PUT/DELETE /<dev>/<part>/<a>/<c>/<o>``
  (``X-Timestamp``, ``X-Size``, ``X-Content-Type``, ``X-Etag``) and containers
  ``PUT/HEAD/GET/POST/DELETE /<dev>/<part>/<a>/<c>`` with listings and the
  account update headers ``X-Account-Host/Partition/Device``.
* account server (6202): ``PUT/HEAD/GET/POST/DELETE /<dev>/<part>/<a>`` and
  container rows ``PUT /<dev>/<part>/<a>/<c>`` (``X-Put-Timestamp``,
  ``X-Delete-Timestamp``, ``X-Object-Count``, ``X-Bytes-Used``).
* every server answers ``GET /healthcheck`` with 200 ``OK``.
* nubis extension: ``POST /<dev>/_rows`` on a container server applies a
  msgpack batch of object-row updates in one transaction (used by the object
  servers; see :mod:`nubis.daemons.storage.updates`).

Storage (one device = one directory): object bodies above
``inline_threshold`` (64 KiB) in ``objects[-N]/<part>/<suffix>/<hash>/<ts>.data``
(``<ts>.ts`` tombstones), everything else in LMDB environments per device:
``objects.lmdb`` (object metadata + inline bodies + the durable queue of
container updates), ``containers.lmdb`` and ``accounts.lmdb`` (records, rows
keyed for cursor-walk listings, counts kept incrementally). Object writes are
fsync'd (file, directories, LMDB commit; group commit) before the reply;
container/account databases are flushed every ``db_sync_interval`` seconds
(``db_fsync = true`` makes them synchronous too). Reads verify xxh3 checksums
per 1 MiB chunk; corrupt objects are quarantined and answered 404.

Configuration: the ``[storage]`` section (:class:`StorageConfig` in
:mod:`nubis.daemons.storage.config`).

Multi-node all-in-one convention (several storage "nodes" on one host, like
Swift's SAIO): ``[storage] node_count = N`` (default 1). Node ``i``
(0-based) serves

* object port ``object_port + 10*i``, container port ``container_port + 10*i``,
  account port ``account_port + 10*i`` (defaults 6200/6201/6202, so node 1 is
  6210/6211/6212, ...);
* devices dir ``<devices>`` when ``node_count == 1``, else ``<devices>/node<i>``
  (``devices`` defaults to ``<state_dir>/devices``). Each device is a
  directory inside it (``d1``, ``d2``, ...); device names should be unique
  cluster-wide. Use :func:`nubis.daemons.storage.config.node_settings` to get
  ``(ports, devices_dir)`` for node ``i`` when writing rings.

A process serves one node: the daemon entry points ``run(storage, cluster, once)``
(registered as ``object-server``, ``container-server``, ``account-server``)
read the node index from the environment variable ``NUBIS_STORAGE_NODE``
(default 0); :func:`nubis.daemons.storage.runner.run_node` takes it explicitly.
The supervisor starts one process per (server kind, node) and sets that variable.
"""
