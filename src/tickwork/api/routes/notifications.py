"""Notification channels, rules and the delivery log (tickwork extensions).

    /cloud/v6/notifications/channels            POST create, GET list
    /cloud/v6/notifications/channels/{id}       GET, PATCH, DELETE (409 while a rule uses it)
    /cloud/v6/notifications/channels/{id}/test  POST: a sample message, sent by a worker
    /cloud/v6/notifications/channels/{id}/deliveries   GET: the channel's log, newest first
    /cloud/v6/notifications/rules               POST create, GET list
    /cloud/v6/notifications/rules/{id}          GET, PATCH, DELETE
    /cloud/v6/test_runs/{id}/notifications      GET: the deliveries of the run's events

Nothing here sends anything: a test is queued for a worker (which holds the egress policy
and the SMTP settings), and the request waits for its answer a bounded time (``wait``).
Secrets (URLs, webhook secrets, header values) are never answered.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tickwork.api.deps import Caller, Context, JsonBody, ResourceId
from tickwork.api.openapi import error_responses, inline_json_request
from tickwork.api.pagination import Paging, page_response
from tickwork.api.render import json_response
from tickwork.core.instants import format_instant, from_ms
from tickwork.core.notices import Rule
from tickwork.dialects.notifications import (
    ChannelListResponse,
    ChannelModel,
    CreateChannelRequest,
    CreateRuleRequest,
    DeliveryListResponse,
    DeliveryModel,
    HeldModel,
    PatchChannelRequest,
    PatchRuleRequest,
    RuleListResponse,
    RuleModel,
    channel_model,
    parse_channel_patch,
    parse_new_channel,
    parse_new_rule,
    parse_rule_patch,
    rule_model,
)
from tickwork.errors import NotFound, Problem, ValidationError
from tickwork.store import Store
from tickwork.store.notifications import Delivery

router = APIRouter(prefix="/cloud/v6", tags=["notifications"])

TEST_POLL_S = 0.1
MAX_WAIT_S = 30.0


def delivery_model(delivery: Delivery) -> DeliveryModel:
    return DeliveryModel(
        id=delivery.id,
        event_id=delivery.event_id,
        kind=delivery.kind,
        title=delivery.title,
        channel_id=delivery.channel_id,
        run_id=delivery.run_id,
        load_test_id=delivery.load_test_id,
        rules=list(delivery.rules),
        status=delivery.status,  # type: ignore[arg-type]  # one of DELIVERY_STATUSES
        attempts=delivery.attempts,
        answer_status=delivery.answer_status,
        error=delivery.error,
        response=delivery.response,
        more=delivery.more,
        created=format_instant(delivery.created),
        updated=format_instant(delivery.updated),
    )


# Channels


@router.post(
    "/notifications/channels",
    operation_id="notification_channels_create",
    summary="Create a notification channel (tickwork extension).",
    description="A webhook (JSON, signed with HMAC-SHA256, custom headers), Slack or "
    "Microsoft Teams incoming webhook, or e-mail (the workers' SMTP settings). `url`, "
    "`secret` and header values are write-only.",
    status_code=201,
    response_model=ChannelModel,
    openapi_extra=inline_json_request(CreateChannelRequest),
)
def create_channel(caller: Caller, context: Context, body: JsonBody) -> Response:
    store = context.store.notifications
    channel = parse_new_channel(body, channel_id=0, stack=caller.stack, now=context.clock())
    created = store.channels.create(replace(channel, id=store.channels.new_id()))
    return json_response(channel_model(created), 201)


@router.get(
    "/notifications/channels",
    operation_id="notification_channels_list",
    summary="List the stack's notification channels (tickwork extension).",
    response_model=ChannelListResponse,
)
def list_channels(caller: Caller, context: Context, paging: Paging, request: Request) -> Response:
    channels, total = context.store.notifications.channels.page(
        caller.stack, skip=paging.skip, top=paging.top
    )
    return page_response(
        ChannelListResponse,
        [channel_model(channel) for channel in channels],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


@router.get(
    "/notifications/channels/{id}",
    operation_id="notification_channels_retrieve",
    summary="Get a notification channel (tickwork extension).",
    response_model=ChannelModel,
    responses=error_responses(404),
)
def get_channel(id: ResourceId, caller: Caller, context: Context) -> Response:
    return json_response(channel_model(context.store.notifications.channels.get(caller.stack, id)))


@router.patch(
    "/notifications/channels/{id}",
    operation_id="notification_channels_partial_update",
    summary="Update a notification channel (tickwork extension).",
    description="Fields left out keep their value (secrets included); `type` cannot change. "
    "Answers the channel as it is now.",
    response_model=ChannelModel,
    responses=error_responses(404),
    openapi_extra=inline_json_request(PatchChannelRequest),
)
def update_channel(id: ResourceId, caller: Caller, context: Context, body: JsonBody) -> Response:
    channels = context.store.notifications.channels
    current = channels.get(caller.stack, id)
    updated = channels.update(parse_channel_patch(body, current, now=context.clock()))
    return json_response(channel_model(updated))


@router.delete(
    "/notifications/channels/{id}",
    operation_id="notification_channels_destroy",
    summary="Delete a notification channel (tickwork extension).",
    description="409 while a rule sends to it. Its delivery log is kept until retention.",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
)
def delete_channel(id: ResourceId, caller: Caller, context: Context) -> Response:
    context.store.notifications.channels.delete(caller.stack, id)
    return Response(status_code=204)


WaitSeconds = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_S,
        description="How long to wait for a worker's answer (seconds). 200 with the answer "
        "when it came in time, else 202 with the queued delivery.",
    ),
]


@router.post(
    "/notifications/channels/{id}/test",
    operation_id="notification_channels_test",
    summary="Send a test message to a channel and say how the receiver answered "
    "(tickwork extension).",
    description="A worker sends a sample message (a made-up failed run), in one attempt. 200: "
    "the delivery with the receiver's answer (`status` sent or failed, `answer_status`, "
    "`response`, `error`); 202: no worker answered within `wait` (the delivery is in the "
    "channel's log).",
    response_model=DeliveryModel,
    responses={
        **error_responses(404),
        202: {"model": DeliveryModel, "description": "Queued; no answer yet."},
    },
)
def send_test(
    id: ResourceId, caller: Caller, context: Context, wait: WaitSeconds = 10.0
) -> Response:
    notifications = context.store.notifications
    channel = notifications.channels.get(caller.stack, id)
    delivery = notifications.enqueue_test(channel, now=context.clock())
    deadline = time.monotonic() + wait
    while not delivery.finished and time.monotonic() < deadline:
        time.sleep(TEST_POLL_S)
        delivery = notifications.delivery(delivery.event_id, channel.id) or delivery
    return json_response(delivery_model(delivery), 200 if delivery.finished else 202)


@router.get(
    "/notifications/channels/{id}/deliveries",
    operation_id="notification_channels_deliveries",
    summary="A channel's delivery log, newest first (tickwork extension).",
    response_model=DeliveryListResponse,
    responses=error_responses(404),
)
def channel_deliveries(
    id: ResourceId, caller: Caller, context: Context, paging: Paging, request: Request
) -> Response:
    notifications = context.store.notifications
    notifications.channels.get(caller.stack, id)
    found, total = notifications.of_channel(caller.stack, id, skip=paging.skip, top=paging.top)
    return page_response(
        DeliveryListResponse,
        [delivery_model(delivery) for delivery in found],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


@router.get(
    "/test_runs/{id}/notifications",
    operation_id="test_runs_notifications",
    summary="The notifications sent about a test run, newest first (tickwork extension).",
    response_model=DeliveryListResponse,
    responses=error_responses(404),
)
def run_deliveries(
    id: ResourceId, caller: Caller, context: Context, paging: Paging, request: Request
) -> Response:
    context.store.runs.get(caller.stack, id)
    found, total = context.store.notifications.of_run(
        caller.stack, id, skip=paging.skip, top=paging.top
    )
    return page_response(
        DeliveryListResponse,
        [delivery_model(delivery) for delivery in found],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


# Rules


def _scope_problems(store: Store, rule: Rule) -> list[Problem]:
    """What a rule names that is not in its stack (channels are checked again, atomically,
    when it is written)."""
    found = []
    if rule.project_id is not None:
        try:
            store.projects.get(rule.stack, rule.project_id)
        except NotFound:
            message = f"project_id: project {rule.project_id} not found."
            found.append(Problem("not_found", "project_id", message))
    if rule.load_test_id is not None:
        try:
            store.load_tests.get(rule.stack, rule.load_test_id)
        except NotFound:
            message = f"load_test_id: load test {rule.load_test_id} not found."
            found.append(Problem("not_found", "load_test_id", message))
    for index, channel_id in enumerate(rule.channels):
        channel = store.notifications.channels.get_any(channel_id)
        if channel is None or channel.stack != rule.stack:
            message = f"channels[{index}]: notification channel {channel_id} not found."
            found.append(Problem("not_found", f"channels[{index}]", message))
    return found


def _checked_scope(store: Store, rule: Rule) -> Rule:
    problems = _scope_problems(store, rule)
    if problems:
        raise ValidationError(problems, "The rule is not valid.")
    return rule


def _rule_model(store: Store, rule: Rule) -> RuleModel:
    held = [
        HeldModel(
            kind=window.partition(":")[0],
            load_test_id=int(window.partition(":")[2]),
            count=count,
            quiet_until=format_instant(from_ms(until_ms)),
        )
        for window, (until_ms, count) in sorted(store.notifications.rules.windows(rule.id).items())
        if count > 0 and window.partition(":")[2].isdigit()
    ]
    return rule_model(rule, held)


@router.post(
    "/notifications/rules",
    operation_id="notification_rules_create",
    summary="Create a notification rule (tickwork extension).",
    description="Binds event kinds of the stack's load tests (or one project's, or one load "
    "test's) to channels.",
    status_code=201,
    response_model=RuleModel,
    openapi_extra=inline_json_request(CreateRuleRequest),
)
def create_rule(caller: Caller, context: Context, body: JsonBody) -> Response:
    store = context.store
    rule = _checked_scope(
        store, parse_new_rule(body, rule_id=0, stack=caller.stack, now=context.clock())
    )
    created = store.notifications.rules.create(replace(rule, id=store.notifications.rules.new_id()))
    return json_response(_rule_model(store, created), 201)


@router.get(
    "/notifications/rules",
    operation_id="notification_rules_list",
    summary="List the stack's notification rules (tickwork extension).",
    response_model=RuleListResponse,
)
def list_rules(caller: Caller, context: Context, paging: Paging, request: Request) -> Response:
    store = context.store
    rules, total = store.notifications.rules.page(caller.stack, skip=paging.skip, top=paging.top)
    return page_response(
        RuleListResponse,
        [_rule_model(store, rule) for rule in rules],
        total,
        query=paging,
        request=request,
        public_url=context.public_url,
    )


@router.get(
    "/notifications/rules/{id}",
    operation_id="notification_rules_retrieve",
    summary="Get a notification rule, with the events it holds back (tickwork extension).",
    response_model=RuleModel,
    responses=error_responses(404),
)
def get_rule(id: ResourceId, caller: Caller, context: Context) -> Response:
    store = context.store
    return json_response(_rule_model(store, store.notifications.rules.get(caller.stack, id)))


@router.patch(
    "/notifications/rules/{id}",
    operation_id="notification_rules_partial_update",
    summary="Update a notification rule (tickwork extension).",
    description="Fields left out keep their value. Answers the rule as it is now.",
    response_model=RuleModel,
    responses=error_responses(404),
    openapi_extra=inline_json_request(PatchRuleRequest),
)
def update_rule(id: ResourceId, caller: Caller, context: Context, body: JsonBody) -> Response:
    store = context.store
    current = store.notifications.rules.get(caller.stack, id)
    rule = _checked_scope(store, parse_rule_patch(body, current, now=context.clock()))
    return json_response(_rule_model(store, store.notifications.rules.update(rule)))


@router.delete(
    "/notifications/rules/{id}",
    operation_id="notification_rules_destroy",
    summary="Delete a notification rule (tickwork extension).",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
)
def delete_rule(id: ResourceId, caller: Caller, context: Context) -> Response:
    context.store.notifications.rules.delete(caller.stack, id)
    return Response(status_code=204)
