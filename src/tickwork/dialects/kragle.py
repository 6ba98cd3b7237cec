"""The Kragle-style schedules API: its wire shapes and their translation to core triggers.

A Kragle schedule is a timing template: ``config.period`` (seconds between runs) or, with
``once``, ``config.timestamp`` (Unix seconds, the one run). It fires nothing until a job binds
it to a load test (tickwork's jobs, below). How its fields become a core trigger:

    once  config                   trigger
    true  {timestamp}              Once at ``timestamp``
    false {period}                 Interval(period), first at anchor + period
    false {period, timestamp}      Interval(period), first at ``timestamp`` (tickwork extension)

The anchor is the instant the template's timing was last set (created, or a PUT that changed
``once`` or ``config``), to the second, so every job of a template fires in step
(``updated``). Templates and jobs are rendered from the fields of their stored records
(``TemplateFields``, ``JobFields``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tickwork.core import Interval, Once, Schedule
from tickwork.core.instants import EPOCH, LATEST, format_instant
from tickwork.dialects.audit import AuditEntryModel
from tickwork.dialects.wire import DateTime, StrictWire, from_json
from tickwork.errors import Problem, ValidationError

PAGE_SIZE = 10
MAX_PERIOD_S = 10 * 366 * 86_400  # ten years: beyond it a "period" is a typo
MAX_TIMESTAMP = (LATEST - EPOCH) // timedelta(seconds=1)  # 9999-12-30T23:59:59Z, as everywhere
MAX_PAGE = (2**53 - 1) // PAGE_SIZE  # keeps the offset inside Redis's range arguments

Name = Annotated[str | None, Field(max_length=255, description="A human-readable name.")]


class KragleConfig(BaseModel):
    """The valid elements of a ``config``; any other element is refused."""

    model_config = ConfigDict(strict=True, extra="forbid")

    period: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PERIOD_S,
        description="The number of seconds between successive runs of the jobs using it.",
    )
    timestamp: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TIMESTAMP,
        description="Unix seconds: the one run of a one-time schedule. With a period "
        "(tickwork extension), the first run.",
    )


Id = Annotated[int, Field(ge=1, le=2**63 - 1, json_schema_extra={"format": "int64"})]


class CreateKragleSchedule(StrictWire):
    READ_ONLY = frozenset({"id"})  # a schedule as read, sent back: a new one like it

    config: KragleConfig
    name: Name = None
    once: bool = False


class UpdateKragleSchedule(StrictWire):
    id: Id = Field(description="The schedule to update.")
    config: KragleConfig | None = None
    name: Name = None
    once: bool | None = None


class KragleSchedule(BaseModel):
    id: int
    name: str | None
    once: bool
    config: dict[str, int] = Field(description="As given: 'period' and/or 'timestamp'.")


class KragleScheduleList(BaseModel):
    count: int = Field(description="Total number of results.")
    pagesize: int = Field(description=f"Results per page ({PAGE_SIZE}).")
    page: int = Field(description="This page's number, from 1.")
    schedules: list[KragleSchedule]


class KragleCreated(BaseModel):
    id: int


class CreateKragleJob(StrictWire):
    """tickwork's binding of a schedule to a load test: the load test runs on its timing."""

    READ_ONLY = frozenset({"id", "next_run", "created_by"})

    schedule_id: Id = Field(description="The Kragle schedule giving the timing.")
    load_test_id: Id = Field(description="The load test to run (k6 v6 load test id).")


class KragleJob(BaseModel):
    id: int = Field(description="The job's id; test runs it fires carry it as schedule_id.")
    schedule_id: int
    load_test_id: int
    next_run: DateTime | None = Field(description="The next run; null when none remains.")
    created_by: str | None


class KragleJobList(BaseModel):
    count: int
    pagesize: int
    page: int
    jobs: list[KragleJob]


class KragleAuditList(BaseModel):
    """A schedule's or a job's audit trail (tickwork extension), newest first, paged like
    the other Kragle lists."""

    count: int = Field(description="Total number of entries.")
    pagesize: int = Field(description=f"Entries per page ({PAGE_SIZE}).")
    page: int = Field(description="This page's number, from 1.")
    entries: list[AuditEntryModel]


@dataclass(frozen=True, slots=True)
class Timing:
    """What decides when a template fires, as given on the wire."""

    once: bool
    config: dict[str, int]


@dataclass(frozen=True, slots=True)
class TemplatePatch:
    """A validated PUT: only the fields named in ``given`` change."""

    id: int
    given: frozenset[str]
    name: str | None
    once: bool | None
    config: dict[str, int] | None


def _given(config: KragleConfig) -> dict[str, int]:
    return config.model_dump(exclude_none=True)


def parse_create(body: bytes) -> tuple[str | None, Timing]:
    request = from_json(CreateKragleSchedule, body, "The schedule is not valid.")
    timing = Timing(request.once, _given(request.config))
    check_timing(timing)
    return request.name, timing


def parse_update(body: bytes) -> TemplatePatch:
    request = from_json(UpdateKragleSchedule, body, "The schedule is not valid.")
    given = frozenset(request.model_fields_set - {"id"})
    if "once" in given and request.once is None:
        problem = Problem("invalid_type", "once", "once must be a boolean, not null.")
        raise ValidationError([problem], "The schedule is not valid.")
    if "config" in given and request.config is None:
        problem = Problem("invalid_type", "config", "config must be an object, not null.")
        raise ValidationError([problem], "The schedule is not valid.")
    return TemplatePatch(
        id=request.id,
        given=given,
        name=request.name,
        once=request.once,
        config=_given(request.config) if request.config is not None else None,
    )


def parse_job(body: bytes) -> CreateKragleJob:
    return from_json(CreateKragleJob, body, "The job is not valid.")


def check_timing(timing: Timing) -> None:
    """The cross-field rules of ``once`` and ``config``; ValidationError naming each."""
    found: list[Problem] = []
    period, timestamp = timing.config.get("period"), timing.config.get("timestamp")
    if timing.once:
        if timestamp is None:
            found.append(
                Problem("required", "config.timestamp", "A one-time schedule needs a timestamp.")
            )
        if period is not None:
            found.append(
                Problem(
                    "period_with_once",
                    "config.period",
                    "A one-time schedule has no period; set once to false to repeat.",
                )
            )
    elif period is None:
        found.append(
            Problem(
                "required",
                "config.period",
                "A repeating schedule needs a period; set once to true for a one-time one.",
            )
        )
    if found:
        raise ValidationError(found, "The schedule is not valid.")


def to_core(timing: Timing, *, anchor: datetime) -> Schedule:
    """The core trigger of a checked ``timing`` whose timing was set at ``anchor``."""
    timestamp = timing.config.get("timestamp")
    at = EPOCH + timedelta(seconds=timestamp) if timestamp is not None else None
    if timing.once:
        assert at is not None  # check_timing
        return Schedule(at, Once())
    period = timedelta(seconds=timing.config["period"])
    return Schedule(at if at is not None else anchor + period, Interval(period))


def anchor_of(now: datetime) -> datetime:
    """Timing set at ``now`` counts from the whole second: Kragle speaks in seconds."""
    return now.replace(microsecond=0)


class TemplateFields(Protocol):
    """What this dialect reads of a stored template."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...
    @property
    def once(self) -> bool: ...
    @property
    def config(self) -> dict[str, int]: ...
    @property
    def anchor(self) -> datetime: ...
    @property
    def schedule(self) -> Schedule: ...


@dataclass(frozen=True, slots=True)
class TemplateUpdate:
    """A template after a PUT. ``moved``: its timing changed, so it counts from a new
    ``anchor`` and its jobs move to the new ``schedule``; else both are as they were."""

    name: str | None
    once: bool
    config: dict[str, int]
    anchor: datetime
    schedule: Schedule
    moved: bool


def apply_update(current: TemplateFields, patch: TemplatePatch, *, now: datetime) -> TemplateUpdate:
    """``current`` with ``patch`` applied at ``now``; ValidationError when the timing it
    makes is not one (``check_timing``). A timing given as it was is no change."""
    name = patch.name if "name" in patch.given else current.name
    timing = Timing(
        once=patch.once if patch.once is not None else current.once,
        config=patch.config if patch.config is not None else current.config,
    )
    if timing == Timing(current.once, current.config):
        return TemplateUpdate(
            name, current.once, current.config, current.anchor, current.schedule, moved=False
        )
    check_timing(timing)
    anchor = anchor_of(now)
    return TemplateUpdate(
        name, timing.once, timing.config, anchor, to_core(timing, anchor=anchor), moved=True
    )


def template_model(template: TemplateFields) -> KragleSchedule:
    return KragleSchedule(
        id=template.id, name=template.name, once=template.once, config=dict(template.config)
    )


class JobFields(Protocol):
    """What this dialect reads of a stored job (a schedule record), beside its template."""

    @property
    def id(self) -> int: ...
    @property
    def load_test_id(self) -> int: ...
    @property
    def next_at(self) -> datetime | None: ...
    @property
    def created_by(self) -> str | None: ...


def job_model(job: JobFields, *, template_id: int) -> KragleJob:
    return KragleJob(
        id=job.id,
        schedule_id=template_id,
        load_test_id=job.load_test_id,
        next_run=format_instant(job.next_at) if job.next_at is not None else None,
        created_by=job.created_by,
    )
