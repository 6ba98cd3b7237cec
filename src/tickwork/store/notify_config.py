"""Notification channels and rules in Redis: what the API writes and the workers read.

A rule names its channels by id; each channel keeps the set of rules that use it, so a
channel in use cannot be deleted (409 naming the rules) and a rule cannot name a channel
deleted under it (its write WATCHes the channels). Each write of a rule also keeps:

- ``{p}:stack:{stack}:notify_rules``: whether the stack has rules at all is one EXISTS, the
  only read a run's ending makes for notifications;
- ``{p}:notify:watch:{kind}`` for the two kinds the fire commit causes (occurrence_skipped,
  schedule_expired): the leader looks at these every few seconds, never per fire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.client import Pipeline

from tickwork.core.instants import format_instant, parse_instant
from tickwork.core.notices import FIRE_KINDS, Channel, ChannelType, Rule
from tickwork.errors import Conflict, NotFound, Problem, ValidationError
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys
from tickwork.store.paging import read_page
from tickwork.store.transactions import transact


def _encode_channel(channel: Channel) -> dict[Any, Any]:
    return {
        "id": str(channel.id),
        "stack": str(channel.stack),
        "name": channel.name,
        "type": channel.type.value,
        "url": channel.url or "",
        "secret": channel.secret or "",
        "headers": json.dumps(dict(channel.headers)),
        "to": json.dumps(list(channel.to)),
        "template": json.dumps(channel.template),
        "subject": json.dumps(channel.subject),
        "created": format_instant(channel.created),
        "updated": format_instant(channel.updated),
    }


def _decode_channel(fields: Mapping[Any, Any]) -> Channel:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return Channel(
        id=int(text["id"]),
        stack=int(text["stack"]),
        name=text["name"],
        type=ChannelType(text["type"]),
        url=text["url"] or None,
        secret=text["secret"] or None,
        headers=json.loads(text["headers"]),
        to=tuple(json.loads(text["to"])),
        template=json.loads(text["template"]),
        subject=json.loads(text["subject"]),
        created=parse_instant(text["created"]),
        updated=parse_instant(text["updated"]),
    )


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


def _encode_rule(rule: Rule) -> dict[Any, Any]:
    return {
        "id": str(rule.id),
        "stack": str(rule.stack),
        "name": rule.name,
        "events": json.dumps(list(rule.events)),
        "channels": json.dumps(list(rule.channels)),
        "project_id": _optional(rule.project_id),
        "load_test_id": _optional(rule.load_test_id),
        "consecutive_failures": _optional(rule.consecutive_failures),
        "skip_reasons": json.dumps(list(rule.skip_reasons)),
        "quiet_seconds": _optional(rule.quiet_seconds),
        "enabled": "1" if rule.enabled else "0",
        "created": format_instant(rule.created),
        "updated": format_instant(rule.updated),
    }


def _int_or_none(text: str) -> int | None:
    return int(text) if text else None


def _decode_rule(fields: Mapping[Any, Any]) -> Rule:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return Rule(
        id=int(text["id"]),
        stack=int(text["stack"]),
        name=text["name"],
        events=tuple(json.loads(text["events"])),
        channels=tuple(json.loads(text["channels"])),
        project_id=_int_or_none(text["project_id"]),
        load_test_id=_int_or_none(text["load_test_id"]),
        consecutive_failures=_int_or_none(text["consecutive_failures"]),
        skip_reasons=tuple(json.loads(text["skip_reasons"])),
        quiet_seconds=_int_or_none(text["quiet_seconds"]),
        enabled=text["enabled"] == "1",
        created=parse_instant(text["created"]),
        updated=parse_instant(text["updated"]),
    )


class Channels:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def new_id(self) -> int:
        with translated():
            return int(self._client.incr(self._keys.ids("notify_channel")))

    def create(self, channel: Channel) -> Channel:
        with translated(), self._client.pipeline() as pipe:
            pipe.hset(self._keys.notify_channel(channel.id), mapping=_encode_channel(channel))
            pipe.zadd(
                self._keys.stack_index(channel.stack, "notify_channels"),
                {str(channel.id): channel.id},
            )
            pipe.execute()
        return channel

    def get_any(self, channel_id: int) -> Channel | None:
        with translated():
            fields = self._client.hgetall(self._keys.notify_channel(channel_id))
        return _decode_channel(fields) if fields else None

    def get(self, stack: int, channel_id: int) -> Channel:
        channel = self.get_any(channel_id)
        if channel is None or channel.stack != stack:
            raise NotFound(f"Notification channel {channel_id} not found.")
        return channel

    def page(self, stack: int, *, skip: int, top: int) -> tuple[list[Channel], int]:
        rows, total = read_page(
            self._client,
            self._keys.stack_index(stack, "notify_channels"),
            self._keys.notify_channel,
            skip=skip,
            top=top,
        )
        return [_decode_channel(row) for row in rows], total

    def update(self, channel: Channel) -> Channel:
        """Write ``channel`` over the stored one (NotFound when it was deleted meanwhile)."""
        key = self._keys.notify_channel(channel.id)

        def attempt(pipe: Pipeline) -> Channel:
            if not pipe.exists(key):
                raise NotFound(f"Notification channel {channel.id} not found.")
            pipe.multi()
            pipe.hset(key, mapping=_encode_channel(channel))
            return channel

        return transact(self._client, attempt, key)

    def delete(self, stack: int, channel_id: int) -> None:
        """Delete the channel (its delivery log stays until retention); Conflict while a
        rule sends to it."""
        key, rules_key = (
            self._keys.notify_channel(channel_id),
            self._keys.notify_channel_rules(channel_id),
        )

        def attempt(pipe: Pipeline) -> None:
            self.get(stack, channel_id)
            users = sorted(int(text_of(raw)) for raw in pipe.smembers(rules_key))
            if users:
                named = ", ".join(str(rule) for rule in users)
                plural = "s" if len(users) > 1 else ""
                raise Conflict(
                    f"Notification channel {channel_id} is used by rule{plural} {named}: "
                    "remove it from them first."
                )
            pipe.multi()
            pipe.delete(key, rules_key)
            pipe.zrem(self._keys.stack_index(stack, "notify_channels"), channel_id)

        transact(self._client, attempt, key, rules_key)


class Rules:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    def new_id(self) -> int:
        with translated():
            return int(self._client.incr(self._keys.ids("notify_rule")))

    def get_any(self, rule_id: int) -> Rule | None:
        with translated():
            fields = self._client.hgetall(self._keys.notify_rule(rule_id))
        return _decode_rule(fields) if fields else None

    def get(self, stack: int, rule_id: int) -> Rule:
        rule = self.get_any(rule_id)
        if rule is None or rule.stack != stack:
            raise NotFound(f"Notification rule {rule_id} not found.")
        return rule

    def page(self, stack: int, *, skip: int, top: int) -> tuple[list[Rule], int]:
        rows, total = read_page(
            self._client,
            self._keys.stack_index(stack, "notify_rules"),
            self._keys.notify_rule,
            skip=skip,
            top=top,
        )
        return [_decode_rule(row) for row in rows], total

    def of_stack(self, stack: int) -> list[Rule]:
        """Every rule of the stack (a stack has a handful: read whole by the workers)."""
        rules, _ = self.page(stack, skip=0, top=10_000)
        return rules

    def windows(self, rule_id: int) -> dict[str, tuple[int, int]]:
        """The rule's storm windows: "{kind}:{load_test}" -> (until_ms, held)."""
        with translated():
            raw = self._client.hgetall(self._keys.notify_rule_windows(rule_id))
        found = {}
        for field, value in raw.items():
            until_ms, held = text_of(value).split()
            found[text_of(field)] = (int(until_ms), int(held))
        return found

    def create(self, rule: Rule) -> Rule:
        return self._write(rule, None)

    def update(self, rule: Rule) -> Rule:
        """Write ``rule`` over the stored one (NotFound when it was deleted meanwhile)."""
        return self._write(rule, rule.id)

    def _write(self, rule: Rule, existing: int | None) -> Rule:
        key = self._keys.notify_rule(rule.id)
        channel_keys = [self._keys.notify_channel(channel) for channel in rule.channels]

        def attempt(pipe: Pipeline) -> Rule:
            before: Rule | None = None
            if existing is not None:
                fields = pipe.hgetall(key)
                if not fields:
                    raise NotFound(f"Notification rule {rule.id} not found.")
                before = _decode_rule(fields)
            missing = [
                Problem(
                    "not_found",
                    f"channels[{index}]",
                    f"channels[{index}]: notification channel {channel} not found.",
                )
                for index, (channel, stack) in enumerate(
                    zip(rule.channels, self._stacks_of(pipe, channel_keys), strict=True)
                )
                if stack != rule.stack
            ]
            if missing:
                raise ValidationError(missing, "The rule is not valid.")
            pipe.multi()
            pipe.hset(key, mapping=_encode_rule(rule))
            pipe.zadd(self._keys.stack_index(rule.stack, "notify_rules"), {str(rule.id): rule.id})
            self._queue_links(pipe, rule.id, before, rule)
            return rule

        return transact(self._client, attempt, key, *channel_keys)

    @staticmethod
    def _stacks_of(pipe: Pipeline, channel_keys: Sequence[str]) -> list[int | None]:
        stacks = [pipe.hget(key, "stack") for key in channel_keys]
        return [int(text_of(raw)) if raw is not None else None for raw in stacks]

    def _queue_links(
        self, pipe: Pipeline, rule_id: int, before: Rule | None, after: Rule | None
    ) -> None:
        """The channels' rule sets and the leader's watch sets, from ``before`` to ``after``."""
        old = set(before.channels) if before else set()
        new = set(after.channels) if after else set()
        for channel in sorted(old - new):
            pipe.srem(self._keys.notify_channel_rules(channel), rule_id)
        for channel in sorted(new):
            pipe.sadd(self._keys.notify_channel_rules(channel), rule_id)
        for kind in sorted(FIRE_KINDS):
            if after is not None and after.enabled and kind in after.events:
                pipe.sadd(self._keys.notify_watch(kind), rule_id)
            else:
                pipe.srem(self._keys.notify_watch(kind), rule_id)

    def delete(self, stack: int, rule_id: int) -> None:
        key = self._keys.notify_rule(rule_id)

        def attempt(pipe: Pipeline) -> None:
            fields = pipe.hgetall(key)
            if not fields or _decode_rule(fields).stack != stack:
                raise NotFound(f"Notification rule {rule_id} not found.")
            rule = _decode_rule(fields)
            pipe.multi()
            pipe.delete(key, self._keys.notify_rule_windows(rule_id))
            pipe.zrem(self._keys.stack_index(stack, "notify_rules"), rule_id)
            self._queue_links(pipe, rule_id, rule, None)

        transact(self._client, attempt, key)

    def watching_fires(self) -> frozenset[str]:
        """The fire kinds (occurrence_skipped, schedule_expired) some enabled rule names."""
        kinds = sorted(FIRE_KINDS)
        with translated():
            pipe = self._client.pipeline(transaction=False)
            for kind in kinds:
                pipe.exists(self._keys.notify_watch(kind))
            found = pipe.execute()
        return frozenset(kind for kind, exists in zip(kinds, found, strict=True) if exists)
