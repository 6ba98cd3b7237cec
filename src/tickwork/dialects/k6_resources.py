"""The k6 Cloud v6 shapes of projects and load tests, the parsers of their requests, and
their renderers (from the fields of a stored record, ``ProjectFields`` and ``LoadTestFields``).

Field names, bounds and nullability follow the official OpenAPI description. One tickwork
extension: a load test's ``runner`` (``{"type": "k6" | "command" | "webhook", ...}``) tells
the worker how to run it; k6 clients neither send nor read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import SkipJsonSchema

from tickwork.core.instants import format_instant
from tickwork.core.runner_specs import parse_runner_spec
from tickwork.dialects.wire import Closed, DateTime, StrictWire, from_json, problems_from_pydantic
from tickwork.errors import Problem, ValidationError

ProjectName = Annotated[str, Field(min_length=1, max_length=255, description="Project name.")]
LoadTestName = Annotated[
    str,
    Field(min_length=1, max_length=300, description="Unique name of the test within the project."),
]


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer the spec's clients hold in 64 bits (Go's int64)."""
Id = Annotated[int, Field(ge=1, le=INT64_MAX, json_schema_extra={"format": "int64"})]


class PagedList(BaseModel):
    """A k6 collection: its ``value`` (in each subclass), ``@count`` and ``@nextLink``."""

    model_config = ConfigDict(populate_by_name=True)

    count: int | SkipJsonSchema[None] = Field(
        default=None, alias="@count", description="Object count in the collection."
    )
    next_link: str | SkipJsonSchema[None] = Field(
        default=None,
        alias="@nextLink",
        json_schema_extra={"format": "uri"},
        description="A reference to the next page of results. The property is included "
        "until there are no more pages of results to retrieve.",
    )


# Projects


PROJECT_READ_ONLY = frozenset(
    {"id", "is_default", "grafana_folder_uid", "created", "updated", "labels"}
)
"""What ProjectApiModel answers beyond what a create sets."""


class CreateProjectApiModel(StrictWire):
    READ_ONLY = PROJECT_READ_ONLY

    name: ProjectName


class PatchProjectApiModel(Closed):
    name: ProjectName


class ProjectApiModel(BaseModel):
    id: int
    name: str
    is_default: bool
    grafana_folder_uid: str | None
    created: DateTime
    updated: DateTime
    labels: dict[str, str] = Field(default_factory=dict)


class ProjectListResponse(PagedList):
    value: list[ProjectApiModel]


# Load tests


class RunnerConfig(BaseModel):
    """tickwork extension: how the worker runs the load test. Fields beyond ``type`` are the
    runner's own settings (checked by the worker's runner)."""

    model_config = ConfigDict(strict=True, extra="allow")

    type: Literal["k6", "command", "webhook"] = Field(description="The runner to use.")


RUNNER_DESCRIPTION = (
    "tickwork extension: how the worker runs the test. Null or absent: {'type': 'k6'}, the "
    "stored script run by k6."
)


LOAD_TEST_READ_ONLY = frozenset({"id", "project_id", "baseline_test_run_id", "created", "updated"})
"""What LoadTestApiModel answers beyond what a create sets."""


class CreateLoadTestApiModel(StrictWire):
    """The multipart/form-data body of a new load test (the spec's CreateLoadTestApiModel).
    For the OpenAPI document: parse_create_load_test_form reads the form."""

    READ_ONLY = LOAD_TEST_READ_ONLY

    name: LoadTestName
    script: bytes | None = Field(
        default=None,
        description="Test script in the form of a UTF-8 encoded text or a k6 .tar archive.",
    )
    k6_version: Int64 | None = Field(default=None, description="Identifier of the k6 version.")
    runner: str | None = Field(default=None, description=RUNNER_DESCRIPTION + " JSON text.")


class CreateLoadTestJsonModel(StrictWire):
    """tickwork convenience: the same fields as a JSON document, the script as text."""

    READ_ONLY = LOAD_TEST_READ_ONLY

    name: LoadTestName
    script: str | None = None
    k6_version: Int64 | None = None
    runner: RunnerConfig | None = Field(default=None, description=RUNNER_DESCRIPTION)


class PatchLoadTestApiModel(Closed):
    name: LoadTestName | SkipJsonSchema[None] = None
    baseline_test_run_id: Id | None = Field(default=None, json_schema_extra={"deprecated": True})
    k6_version: Int64 | None = None
    runner: RunnerConfig | None = Field(default=None, description=RUNNER_DESCRIPTION)


class LoadTestApiModel(BaseModel):
    id: int
    project_id: int
    name: str
    baseline_test_run_id: int | None
    k6_version: int | None
    created: DateTime
    updated: DateTime
    runner: dict[str, Any] = Field(description=RUNNER_DESCRIPTION)


class LoadTestListResponse(PagedList):
    value: list[LoadTestApiModel]


@dataclass(frozen=True, slots=True)
class NewLoadTest:
    """A validated create request, whichever body type carried it."""

    name: str
    script: bytes | None
    k6_version: int | None
    runner: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LoadTestPatch:
    """A validated patch: only the fields named in ``given`` change."""

    given: frozenset[str]
    name: str | None
    baseline_test_run_id: int | None
    k6_version: int | None
    runner: dict[str, Any] | None


def _invalid(problems: list[Problem], what: str) -> ValidationError:
    return ValidationError(problems, f"The {what} is not valid.")


def parse_create_project(body: bytes) -> CreateProjectApiModel:
    return from_json(CreateProjectApiModel, body, "The project is not valid.")


def parse_patch_project(body: bytes) -> PatchProjectApiModel:
    return from_json(PatchProjectApiModel, body, "The project is not valid.")


def _runner_dict(runner: RunnerConfig | None) -> dict[str, Any] | None:
    """The runner as stored, checked as the worker will read it (ValidationError naming
    each wrong setting), so a mistake answers 400 now rather than failing every run."""
    if runner is None:
        return None
    data = runner.model_dump(mode="json", exclude_unset=True)
    parse_runner_spec(data)
    return data


def parse_create_load_test_json(body: bytes) -> NewLoadTest:
    model = from_json(CreateLoadTestJsonModel, body, "The load test is not valid.")
    return NewLoadTest(
        name=model.name,
        script=model.script.encode() if model.script is not None else None,
        k6_version=model.k6_version,
        runner=_runner_dict(model.runner),
    )


_FORM_FIELDS = frozenset({"name", "script", "k6_version", "runner"})


def parse_create_load_test_form(fields: dict[str, bytes]) -> NewLoadTest:
    """The multipart fields of a new load test; every part but ``script`` is UTF-8 text."""
    problems = [
        Problem("unknown_field", key, f"{key!r} is not a field of a new load test.")
        for key in sorted(set(fields) - _FORM_FIELDS - LOAD_TEST_READ_ONLY)
    ]
    text: dict[str, str] = {}
    for key in ("name", "k6_version", "runner"):
        if key in fields:
            try:
                text[key] = fields[key].decode()
            except UnicodeDecodeError:
                problems.append(Problem("invalid_type", key, f"{key} is not UTF-8 text."))
    name = text.get("name")
    if name is None and "name" not in fields:
        problems.append(Problem("required", "name", "Field required"))
    elif name is not None and not 1 <= len(name) <= 300:
        code = "too_short" if not name else "too_long"
        problems.append(Problem(code, "name", "name must have 1 to 300 characters."))
    k6_version: int | None = None
    if text.get("k6_version"):
        k6_version = _form_integer(text["k6_version"], "k6_version", problems)
    runner: dict[str, Any] | None = None
    if text.get("runner"):
        try:
            parsed = RunnerConfig.model_validate(json.loads(text["runner"]))
            runner = _runner_dict(parsed)
        # RecursionError: json.loads of a deeply nested document
        except (ValueError, RecursionError, PydanticValidationError) as exc:
            found = (
                problems_from_pydantic(exc, "runner")
                if isinstance(exc, PydanticValidationError)
                else [Problem("invalid_json", "runner", "runner is not a JSON object.")]
            )
            problems.extend(found)
    if problems or name is None:
        raise _invalid(problems, "load test")
    return NewLoadTest(name=name, script=fields.get("script"), k6_version=k6_version, runner=runner)


_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)


def _form_integer(text: str, key: str, problems: list[Problem]) -> int | None:
    """A form field's integer, written as JSON writes one: int() would also read " 5", "5_0"
    and other scripts' digits."""
    if _INTEGER.fullmatch(text) is None or not INT64_MIN <= int(text) <= INT64_MAX:
        problems.append(Problem("invalid_type", key, f"{key} is not a 64-bit integer."))
        return None
    return int(text)


def parse_patch_load_test(body: bytes) -> LoadTestPatch:
    model = from_json(PatchLoadTestApiModel, body, "The load test is not valid.")
    if "name" in model.model_fields_set and model.name is None:
        raise _invalid([Problem("invalid_type", "name", "name may not be null.")], "load test")
    return LoadTestPatch(
        given=frozenset(model.model_fields_set),
        name=model.name,
        baseline_test_run_id=model.baseline_test_run_id,
        k6_version=model.k6_version,
        runner=_runner_dict(model.runner),
    )


# Rendering


class ProjectFields(Protocol):
    """What ``project_model`` reads of a stored project."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def created(self) -> datetime: ...
    @property
    def updated(self) -> datetime: ...


def project_model(project: ProjectFields) -> ProjectApiModel:
    return ProjectApiModel(
        id=project.id,
        name=project.name,
        is_default=False,
        grafana_folder_uid=None,
        created=format_instant(project.created),
        updated=format_instant(project.updated),
    )


class LoadTestFields(ProjectFields, Protocol):
    """What ``load_test_model`` reads of a stored load test."""

    @property
    def project_id(self) -> int: ...
    @property
    def baseline_test_run_id(self) -> int | None: ...
    @property
    def k6_version(self) -> int | None: ...
    @property
    def runner(self) -> dict[str, Any]: ...


def load_test_model(test: LoadTestFields) -> LoadTestApiModel:
    return LoadTestApiModel(
        id=test.id,
        project_id=test.project_id,
        name=test.name,
        baseline_test_run_id=test.baseline_test_run_id,
        k6_version=test.k6_version,
        created=format_instant(test.created),
        updated=format_instant(test.updated),
        runner=test.runner,
    )
