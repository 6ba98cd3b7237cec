"""The base of every request body: JSON types as written, and no property we do not know.

An unknown property is refused (400 naming it), never dropped: a typo such as
``recurrence_rul`` must not turn a recurring schedule into a one-shot. The read-only
properties of what the API answers for the same resource (``READ_ONLY``) are the exception: a
client may send back what it read, and they are accepted and ignored. The OpenAPI document
says both: ``additionalProperties: false``, and each read-only property with
``readOnly: true``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

READ_ONLY_DESCRIPTION = (
    "Read-only: accepted and ignored, so a body read from the API may be sent back."
)


def _declare_read_only(schema: dict[str, Any], model: type[BaseModel]) -> None:
    read_only = sorted(getattr(model, "READ_ONLY", ()))
    properties = schema.setdefault("properties", {})
    for name in read_only:
        properties[name] = {"readOnly": True, "description": READ_ONLY_DESCRIPTION}


class StrictWire(BaseModel):
    # strict: "2" is not an integer and 1 is not a string.
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_declare_read_only)

    READ_ONLY: ClassVar[frozenset[str]] = frozenset()
    """Properties of the resource as read that a request may carry and that are ignored."""

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.READ_ONLY:
            return {key: value for key, value in data.items() if key not in cls.READ_ONLY}
        return data
