"""What every API service may use: token verification, errors, REST helpers, the api host.

Sits below the services (proxy, identity, placement/scheduler, storage, ...)
and imports none of them (see the import-linter contracts in ``pyproject.toml``).
"""
