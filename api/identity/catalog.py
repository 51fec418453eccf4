"""Regions, services, endpoints, and the service catalog a token carries."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from nubis.api.identity import schema as s
from nubis.api.identity.effective import EffectiveStore
from nubis.api.identity.store import Row, _row, _split_extra, new_id
from nubis.api.shared.errors import BadRequestError, ConflictError, ForbiddenError

INTERFACES = ("public", "internal", "admin")


def substitute(url: str, project_id: str | None) -> str | None:
    """Fill ``%(project_id)s``/``$(project_id)s`` (None when it needs a project)."""
    for placeholder in ("%(project_id)s", "$(project_id)s", "%(tenant_id)s", "$(tenant_id)s"):
        if placeholder in url:
            if project_id is None:
                return None
            url = url.replace(placeholder, project_id)
    return url


class CatalogStore(EffectiveStore):
    """Regions, services and endpoints."""

    # --- regions -----------------------------------------------------------
    def create_region(self, values: Row) -> Row:
        """Create a region (id chosen by the caller or generated)."""
        parent = values.get("parent_region_id")
        if parent:
            self._get(s.regions, parent, "region")
        values = {"description": "", **values, "id": values.get("id") or new_id()}
        self._insert(s.regions, _split_extra(s.regions, values),
                     f"Conflict occurred attempting to store region - "
                     f"Duplicate ID, {values['id']}.")
        return self.get_region(values["id"])

    def get_region(self, ident: str) -> Row:
        """Return a region by id."""
        return self._get(s.regions, ident, "region")

    def list_regions(self, **filters: Any) -> list[Row]:
        """List regions."""
        return self._list(s.regions, filters)

    def update_region(self, ident: str, values: Row) -> Row:
        """Update a region."""
        return self._update(s.regions, ident, "region", values)

    def delete_region(self, ident: str) -> None:
        """Delete a region that no endpoint or child region uses."""
        self.get_region(ident)
        if self.list_regions(parent_region_id=ident):
            raise ForbiddenError(f"Unable to delete region {ident} because it or its child "
                            "regions have associated endpoints.")
        with self.engine.begin() as conn:
            conn.execute(s.endpoints.update().where(s.endpoints.c.region_id == ident)
                         .values(region_id=None))
            conn.execute(s.regions.delete().where(s.regions.c.id == ident))

    # --- services ----------------------------------------------------------
    def create_service(self, values: Row) -> Row:
        """Create a service."""
        values = {"enabled": True, **values, "id": values.get("id") or new_id()}
        self._insert(s.services, _split_extra(s.services, values),
                     "Conflict occurred attempting to store service.")
        return self.get_service(values["id"])

    def get_service(self, ident: str) -> Row:
        """Return a service by id."""
        return self._get(s.services, ident, "service")

    def list_services(self, **filters: Any) -> list[Row]:
        """List services (filter by ``type``; ``name`` is matched in Python)."""
        name = filters.pop("name", None)
        rows = self._list(s.services, filters)
        return [r for r in rows if name is None or r.get("name") == name]

    def update_service(self, ident: str, values: Row) -> Row:
        """Update a service."""
        return self._update(s.services, ident, "service", values)

    def delete_service(self, ident: str) -> None:
        """Delete a service and its endpoints."""
        self.get_service(ident)
        with self.engine.begin() as conn:
            conn.execute(s.endpoints.delete().where(s.endpoints.c.service_id == ident))
            conn.execute(s.services.delete().where(s.services.c.id == ident))

    # --- endpoints ---------------------------------------------------------
    def create_endpoint(self, values: Row) -> Row:
        """Create an endpoint (checks service, region and interface)."""
        self.get_service(values["service_id"])
        if values.get("interface") not in INTERFACES:
            raise BadRequestError("Invalid input for field 'interface': "
                             f"{values.get('interface')!r} is not one of {list(INTERFACES)}")
        if values.get("region_id"):
            self.get_region(values["region_id"])
        values = {"enabled": True, **values, "id": values.get("id") or new_id()}
        self._insert(s.endpoints, _split_extra(s.endpoints, values),
                     "Conflict occurred attempting to store endpoint.")
        return self.get_endpoint(values["id"])

    def get_endpoint(self, ident: str) -> Row:
        """Return an endpoint by id."""
        return self._get(s.endpoints, ident, "endpoint")

    def list_endpoints(self, **filters: Any) -> list[Row]:
        """List endpoints matching column filters."""
        return self._list(s.endpoints, filters)

    def update_endpoint(self, ident: str, values: Row) -> Row:
        """Update an endpoint."""
        if "service_id" in values:
            self.get_service(values["service_id"])
        if values.get("region_id"):
            self.get_region(values["region_id"])
        if "interface" in values and values["interface"] not in INTERFACES:
            raise BadRequestError("Invalid input for field 'interface'.")
        return self._update(s.endpoints, ident, "endpoint", values)

    def delete_endpoint(self, ident: str) -> None:
        """Delete an endpoint."""
        self.get_endpoint(ident)
        with self.engine.begin() as conn:
            conn.execute(s.endpoints.delete().where(s.endpoints.c.id == ident))

    # --- the catalog -------------------------------------------------------
    def catalog(self, project_id: str | None) -> list[dict[str, Any]]:
        """Return the token catalog: enabled services with their enabled endpoints."""
        with self.engine.connect() as conn:
            services = conn.execute(sa.select(s.services).where(s.services.c.enabled)
                                    .order_by(s.services.c.type)).mappings().all()
            endpoints = conn.execute(sa.select(s.endpoints).where(s.endpoints.c.enabled)
                                     .order_by(s.endpoints.c.interface)).mappings().all()
        out = []
        for svc in services:
            svc_row = _row(svc)
            eps = []
            for ep in endpoints:
                if ep["service_id"] != svc["id"]:
                    continue
                url = substitute(ep["url"], project_id)
                if url is None:
                    continue
                eps.append({"id": ep["id"], "interface": ep["interface"],
                            "region_id": ep["region_id"], "region": ep["region_id"],
                            "url": url})
            out.append({"endpoints": eps, "id": svc["id"], "type": svc["type"],
                        "name": svc_row.get("name", "")})
        return out

    def ensure_service(self, svc_type: str, name: str, description: str) -> Row:
        """Return the service of ``svc_type`` named ``name``, creating it if needed."""
        for row in self.list_services(type=svc_type):
            if row.get("name") == name:
                return row
        return self.create_service({"type": svc_type, "name": name,
                                    "description": description})

    def ensure_endpoint(self, service_id: str, interface: str, region: str, url: str) -> None:
        """Make the service's endpoint for (interface, region) point at ``url``."""
        for ep in self.list_endpoints(service_id=service_id, interface=interface,
                                      region_id=region):
            if ep["url"] != url:
                self.update_endpoint(ep["id"], {"url": url})
            return
        try:
            self.create_endpoint({"service_id": service_id, "interface": interface,
                                  "region_id": region, "url": url})
        except ConflictError:
            return
