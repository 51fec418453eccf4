"""Glance's JSON schemas (``/v2/schemas/...``) and the checks made with them.

Clients (openstacksdk, python-glanceclient) download these documents and
validate against them, so they follow Glance's own: the base image properties,
the custom properties devstack ships in ``schema-image.json`` (``kernel_id``,
``ramdisk_id``, ``os_distro``, ...), ``additionalProperties: {"type": "string"}``
for free-form properties, and the collection wrappers with ``first``/``next``;
the task schemas are Glance's ``/v2/schemas/task(s)`` (a list entry leaves out
``input``, ``result`` and ``message``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema

UUID_PATTERN = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")

#: Glance's default ``[image_format] disk_formats`` / ``container_formats``.
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi",
                "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
STATUSES = ("queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated")
VISIBILITIES = ("community", "public", "private", "shared")
MEMBER_STATUSES = ("pending", "accepted", "rejected")


def _ro(kind: Any, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "readOnly": True, "description": description, **extra}


def base_properties() -> dict[str, Any]:
    """Return Glance's base image properties (a fresh copy)."""
    null_str = ["null", "string"]
    return {
        "id": {"type": "string", "description": "An identifier for the image",
               "pattern": UUID_PATTERN},
        "name": {"type": null_str, "description": "Descriptive name for the image",
                 "maxLength": 255},
        "status": _ro("string", "Status of the image", enum=list(STATUSES)),
        "visibility": {"type": "string", "description": "Scope of image accessibility",
                       "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean",
                      "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear "
                      "in default image list response."},
        "checksum": _ro(null_str, "md5 hash of image contents.", maxLength=32),
        "os_hash_algo": _ro(null_str, "Algorithm to calculate the os_hash_value",
                            maxLength=64),
        "os_hash_value": _ro(null_str, "Hexdigest of the image contents using the "
                             "algorithm specified by the os_hash_algo", maxLength=128),
        "owner": {"type": null_str, "description": "Owner of the image", "maxLength": 255},
        "size": _ro(["null", "integer"], "Size of image file in bytes"),
        "virtual_size": _ro(["null", "integer"], "Virtual size of image in bytes"),
        "container_format": {"type": null_str, "description": "Format of the container",
                             "enum": [None, *CONTAINER_FORMATS]},
        "disk_format": {"type": null_str, "description": "Format of the disk",
                        "enum": [None, *DISK_FORMATS]},
        "created_at": _ro("string", "Date and time of image registration"),
        "updated_at": _ro("string", "Date and time of the last image modification"),
        "tags": {"type": "array", "description": "List of strings related to the image",
                 "items": {"type": "string", "maxLength": 255}},
        "direct_url": _ro("string", "URL to access the image file kept in external store"),
        "min_ram": {"type": "integer",
                    "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) "
                     "required to boot image."},
        "self": _ro("string", "An image self url"),
        "file": _ro("string", "An image file url"),
        "stores": _ro("string", "Store in which image data resides.  Only present when "
                      "the operator has enabled multiple stores.  May be a "
                      "comma-separated list of store identifiers."),
        "schema": _ro("string", "An image schema url"),
        "locations": {"type": "array", "description": "A set of URLs to access the image "
                      "file kept in external store",
                      "items": {"type": "object", "required": ["url", "metadata"],
                                "properties": {"url": {"type": "string", "maxLength": 255},
                                               "metadata": {"type": "object"}}}},
    }


def custom_properties() -> dict[str, Any]:
    """Return the properties of Glance's ``etc/schema-image.json`` (devstack loads it)."""
    def os_info(what: str) -> dict[str, Any]:
        return {"type": "string", "description": what}

    uuid_ref = {"type": ["null", "string"], "pattern": UUID_PATTERN}
    return {
        "kernel_id": {**uuid_ref, "description": "ID of image stored in Glance that should "
                      "be used as the kernel when booting an AMI-style image."},
        "ramdisk_id": {**uuid_ref, "description": "ID of image stored in Glance that "
                       "should be used as the ramdisk when booting an AMI-style image."},
        "instance_uuid": os_info("Metadata which can be used to record which instance "
                                 "this image is associated with. (Informational only, "
                                 "does not create an instance snapshot.)"),
        "architecture": os_info("Operating system architecture as specified in "
                                "https://docs.openstack.org/python-glanceclient/latest/"
                                "cli/property-keys.html"),
        "os_distro": os_info("Common name of operating system distribution as specified "
                             "in https://docs.openstack.org/python-glanceclient/latest/"
                             "cli/property-keys.html"),
        "os_version": os_info("Operating system version as specified by the distributor."),
        "description": os_info("A human-readable string describing this image."),
    }


#: Names clients may not set, or only read (Glance's RequestDeserializer lists).
DISALLOWED = ("direct_url", "self", "file", "schema", "stores")
READ_ONLY = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size",
             "direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value")
RESERVED = ("location", "deleted", "deleted_at")
RESERVED_NAMESPACE = "os_glance"
#: Attributes that are columns, not free-form properties.
BASE_ATTRIBUTES = ("checksum", "created_at", "container_format", "disk_format", "id",
                   "min_disk", "min_ram", "name", "size", "virtual_size", "status", "tags",
                   "owner", "updated_at", "visibility", "protected", "os_hidden")
LINKS = [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
         {"rel": "describedby", "href": "{schema}"}]


def image_schema() -> dict[str, Any]:
    """Return ``GET /v2/schemas/image``."""
    return {"name": "image", "properties": {**base_properties(), **custom_properties()},
            "additionalProperties": {"type": "string"}, "links": copy.deepcopy(LINKS)}


def collection(name: str, item: dict[str, Any]) -> dict[str, Any]:
    """Wrap an item schema as Glance's collection schema ``name``."""
    return {"name": name,
            "properties": {name: {"type": "array", "items": item},
                           "first": {"type": "string"}, "next": {"type": "string"},
                           "schema": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def member_schema() -> dict[str, Any]:
    """Return ``GET /v2/schemas/member``."""
    return {"name": "member", "additionalProperties": False, "properties": {
        "member_id": {"type": "string",
                      "description": "An identifier for the image member (tenantId)"},
        "image_id": {"type": "string", "description": "An identifier for the image",
                     "pattern": UUID_PATTERN},
        "created_at": {"type": "string",
                       "description": "Date and time of image member creation"},
        "updated_at": {"type": "string", "description":
                       "Date and time of last modification of image member"},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": list(MEMBER_STATUSES)},
        "schema": {"type": "string"}}}


#: Task types (Glance lists its old ``import`` tasks too).
TASK_TYPES = ("import", "api_image_import")
TASK_STATUSES = ("pending", "processing", "success", "failure")
#: What only ``GET /v2/tasks/{id}`` shows (the list's entries leave them out).
TASK_DETAILS = ("input", "result", "message")


def task_schema(partial: bool = False) -> dict[str, Any]:
    """Return ``GET /v2/schemas/task`` (``partial``: a ``/v2/tasks`` entry's, no details)."""
    def text(what: str) -> dict[str, Any]:
        return {"type": "string", "description": what}

    properties: dict[str, Any] = {
        "id": {**text("An identifier for the task"), "pattern": UUID_PATTERN},
        "type": {**text("The type of task represented by this content"),
                 "enum": list(TASK_TYPES)},
        "status": {**text("The current status of this task"), "enum": list(TASK_STATUSES)},
        "input": {"type": ["null", "object"],
                  "description": "The parameters required by task, JSON blob"},
        "result": {"type": ["null", "object"],
                   "description": "The result of current task, JSON blob"},
        "owner": text("An identifier for the owner of this task"),
        "message": text("Human-readable informative message only included when "
                        "appropriate (usually on failure)"),
        "image_id": text("Image associated with the task"),
        "request_id": text("Human-readable informative request-id"),
        "user_id": text("User associated with the task"),
        "expires_at": {"type": ["null", "string"],
                       "description": "Datetime when this resource would be subject to "
                                      "removal"},
        "created_at": text("Datetime when this resource was created"),
        "updated_at": text("Datetime when this resource was updated"),
        "self": {"type": "string", "readOnly": True},
        "schema": {"type": "string", "readOnly": True},
    }
    if partial:
        for key in TASK_DETAILS:
            del properties[key]
    return {"name": "task", "properties": properties, "additionalProperties": False}


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "image": image_schema,
    "images": lambda: collection("images", image_schema()),
    "member": member_schema,
    "members": lambda: collection("members", member_schema()),
    "task": task_schema,
    "tasks": lambda: collection("tasks", task_schema(partial=True)),
}


class SchemaError(ValueError):
    """A document does not match an image schema (the message is Glance's)."""


class ImageValidator:
    """Validate image documents (whole or partial) against the image schema."""

    def __init__(self) -> None:
        schema = image_schema()
        jsonschema.Draft4Validator.check_schema(schema)
        self._validator = jsonschema.Draft4Validator(schema)

    def validate(self, doc: dict[str, Any]) -> None:
        """Raise :class:`SchemaError` unless ``doc`` matches the image schema."""
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(doc))
        if error is not None:
            raise SchemaError(
                f"Provided object does not match schema 'image': {error.message}")
