"""What every dialect's wire shapes share: strict request bodies, instants as text, pydantic's
errors as Problems, and the parts of an error answer.

Request bodies are strict (``StrictWire``): JSON types as written, and no property we do not
know. An unknown property is refused (400 naming it), never dropped: a typo such as
``recurrence_rul`` must not turn a recurring schedule into a one-shot. The read-only
properties of what the API answers for the same resource (``READ_ONLY``) are the exception: a
client may send back what it read, and they are accepted and ignored. The OpenAPI document
says both: ``additionalProperties: false``, and each read-only property with
``readOnly: true``. A patch body (``Closed``) is as strict and knows no read-only property.

An error answer has the same parts in every dialect (``ErrorParts``: code, message, details);
each dialect renders them in its own shape (``k6.render_error``, ``reports.error_envelope``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from tickwork.errors import Problem, ValidationError

DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""An instant on the wire: RFC 3339 text."""

READ_ONLY_DESCRIPTION = (
    "Read-only: accepted and ignored, so a body read from the API may be sent back."
)

M = TypeVar("M", bound=BaseModel)


def _declare_read_only(schema: dict[str, Any], model: type[BaseModel]) -> None:
    read_only = sorted(getattr(model, "READ_ONLY", ()))
    properties = schema.setdefault("properties", {})
    for name in read_only:
        properties[name] = {"readOnly": True, "description": READ_ONLY_DESCRIPTION}


class StrictWire(BaseModel):
    """The base of every create body."""

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


class Closed(BaseModel):
    """The base of a patch body: the k6 spec's Patch* models say additionalProperties: false,
    and for read-only fields too."""

    model_config = ConfigDict(strict=True, extra="forbid")


_PYDANTIC_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "too_long": "too_long",
    "too_short": "too_short",
    "greater_than_equal": "too_small",
    "less_than_equal": "too_large",
    "string_too_long": "too_long",
    "enum": "invalid_choice",
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
}


def problems_from_pydantic(exc: PydanticValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error, with stable codes and dotted targets."""
    found = []
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"]]
        target = ".".join([prefix, *path] if prefix else path) or None
        code = _PYDANTIC_CODES.get(error["type"], "invalid_type")
        message = str(error["msg"])
        if code == "unknown_field":
            message = f"{path[-1]!r} is not a property of this object."
        found.append(Problem(code, target, message))
    return found


def from_json(model: type[M], body: str | bytes, message: str) -> M:
    """``body`` read as ``model``; ValidationError with ``message`` and one Problem per
    violation."""
    try:
        return model.model_validate_json(body)
    except PydanticValidationError as exc:
        raise ValidationError(problems_from_pydantic(exc), message) from exc


def from_data(model: type[M], data: Any, message: str, *, prefix: str = "") -> M:
    """``data`` (already JSON) read as ``model``, its problems' targets under ``prefix``."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(problems_from_pydantic(exc, prefix), message) from exc


@dataclass(frozen=True, slots=True)
class ErrorParts:
    """An error answer's content, before a dialect gives it its shape: a stable ``code``, a
    ``message`` for people, and one Problem per detail (a ValidationError's)."""

    code: str
    message: str
    details: tuple[Problem, ...] = ()
    target: str | None = None
