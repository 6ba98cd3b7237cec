"""Project records: a name unique in its stack, and the index its listing pages through.

Every write WATCHes the stack's name hash, so two requests racing for one name cannot both
win: the loser's EXEC is void, it re-reads, and finds the name taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis
from redis.client import Pipeline

from tickwork.core.instants import format_instant, parse_instant
from tickwork.errors import Conflict, NotFound
from tickwork.store.audit import INTERNAL, Actor
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.load_tests import LoadTests
from tickwork.store.paging import read_page
from tickwork.store.transactions import transact


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: int
    stack: int
    name: str
    created: datetime
    updated: datetime


def _encode(project: ProjectRecord) -> dict[Any, Any]:
    return {
        "id": str(project.id),
        "stack": str(project.stack),
        "name": project.name,
        "created": format_instant(project.created),
        "updated": format_instant(project.updated),
    }


def decode(fields: Mapping[Any, Any]) -> ProjectRecord:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return ProjectRecord(
        id=int(text["id"]),
        stack=int(text["stack"]),
        name=text["name"],
        created=parse_instant(text["created"]),
        updated=parse_instant(text["updated"]),
    )


class Projects:
    def __init__(self, client: redis.Redis, keys: Keys, load_tests: LoadTests) -> None:
        self._client = client
        self._keys = keys
        self._load_tests = load_tests

    def get(self, stack: int, project_id: int) -> ProjectRecord:
        """The project in ``stack``; NotFound for a missing one or another stack's."""
        with translated():
            fields = self._client.hgetall(self._keys.project(project_id))
        if not fields:
            raise NotFound(f"Project {project_id} not found.")
        project = decode(fields)
        if project.stack != stack:
            raise NotFound(f"Project {project_id} not found.")
        return project

    def page(
        self, stack: int, *, skip: int, top: int, name: str | None = None
    ) -> tuple[list[ProjectRecord], int]:
        """One page of the stack's projects by id (or the one called ``name``), and the total."""
        if name is not None:
            with translated():
                raw = self._client.hget(self._keys.project_names(stack), name)
            found = [self.get(stack, int(text_of(raw)))] if raw is not None else []
            return found[skip : skip + top], len(found)
        index = self._keys.stack_index(stack, "projects")
        rows, total = read_page(self._client, index, self._keys.project, skip=skip, top=top)
        return [decode(row) for row in rows], total

    def names(self, project_ids: Iterable[int]) -> dict[int, str]:
        """Each existing project's name."""
        wanted = sorted(set(project_ids))
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for project_id in wanted:
                pipe.hget(self._keys.project(project_id), "name")
            replies = pipe.execute()
        return {
            project_id: text_of(name)
            for project_id, name in zip(wanted, replies, strict=True)
            if name is not None
        }

    def create(self, stack: int, *, name: str, now: datetime) -> ProjectRecord:
        """A new project; Conflict when the stack already has one of that name."""
        names = self._keys.project_names(stack)

        def attempt(pipe: Pipeline) -> ProjectRecord:
            if pipe.hexists(names, name):
                raise Conflict(f"A project named {name!r} already exists.")
            project_id = int(self._client.incr(self._keys.ids("project")))
            project = ProjectRecord(project_id, stack, name, now, now)
            pipe.multi()
            pipe.hset(self._keys.project(project_id), mapping=_encode(project))
            pipe.hset(names, name, project_id)
            pipe.zadd(self._keys.stack_index(stack, "projects"), {str(project_id): project_id})
            return project

        return transact(self._client, attempt, names)

    def rename(self, stack: int, project_id: int, *, name: str, now: datetime) -> ProjectRecord:
        names = self._keys.project_names(stack)
        key = self._keys.project(project_id)

        def attempt(pipe: Pipeline) -> ProjectRecord:
            project = self.get(stack, project_id)
            holder = pipe.hget(names, name)
            if holder is not None and int(text_of(holder)) != project_id:
                raise Conflict(f"A project named {name!r} already exists.")
            renamed = replace(project, name=name, updated=now)
            pipe.multi()
            pipe.hdel(names, project.name)
            pipe.hset(names, name, project_id)
            pipe.hset(key, mapping=_encode(renamed))
            return renamed

        return transact(self._client, attempt, names, key)

    def delete(
        self, stack: int, project_id: int, *, now: datetime, actor: Actor = INTERNAL
    ) -> None:
        """Delete the project with its load tests and their schedules, in one transaction
        (each deletion in the audit trail). Conflict while one of its load tests has a run
        that has not finished."""
        key = self._keys.project(project_id)
        index = self._keys.project_load_tests(project_id)

        def attempt(pipe: Pipeline) -> None:
            project = self.get(stack, project_id)
            load_test_ids = [int(text_of(raw)) for raw in pipe.zrange(index, 0, -1)]
            removals = [
                self._load_tests.prepare_delete(pipe, stack, lt, now=now, actor=actor)
                for lt in load_test_ids
            ]
            pipe.multi()
            for removal in removals:
                removal(pipe)
            pipe.delete(key, index, self._keys.project_load_test_names(project_id))
            pipe.hdel(self._keys.project_names(stack), project.name)
            pipe.zrem(self._keys.stack_index(stack, "projects"), str(project_id))

        transact(self._client, attempt, key, index)
