"""What a notification says, and which events a run's ending is: pure, no Redis."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tickwork.core.k6_summary import Threshold
from tickwork.core.notice_messages import (
    VARIABLES,
    http_body,
    mail_parts,
    render,
    template_problems,
    variables,
)
from tickwork.core.notices import (
    ChannelType,
    EventKind,
    Notice,
    NoticeRun,
    NoticeSkip,
    Rule,
    Streak,
    ending_kind,
    sample_notice,
    streak,
)

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
SAMPLE = sample_notice(stack=1, at=T0, public_url="https://tw.example")


def _failed(more: int = 0) -> Notice:
    run = NoticeRun(
        id=42,
        status="completed",
        result="failed",
        reason="failed",
        message="failed: k6 thresholds were crossed",
        created=T0,
        ended=T0 + timedelta(seconds=31),
        thresholds_failed=(
            Threshold("http_req_duration", "p(95)<200", False, "p(95)", "<", 200.0, 250.5),
            Threshold("checks", "rate==1", False),
        ),
    )
    return Notice(
        event_id="run-42.run_failed",
        kind="run_failed",
        at=T0 + timedelta(seconds=31),
        stack=1,
        load_test_id=7,
        load_test_name="checkout",
        project_id=3,
        run=run,
        schedule_id=9,
        next_run=T0 + timedelta(days=1),
        more=more,
        link="https://tw.example/cloud/v6/test_runs/42",
    )


@pytest.mark.parametrize(
    ("status", "result", "reason", "kind"),
    [
        ("completed", "passed", "passed", None),
        ("completed", "failed", "failed", EventKind.RUN_FAILED),
        ("completed", "error", "error", EventKind.RUN_ERROR),
        ("aborted", "error", "timed_out", EventKind.RUN_TIMED_OUT),
        ("aborted", "error", "aborted_by_user", EventKind.RUN_ABORTED),
        ("aborted", "error", "worker_stopped", EventKind.RUN_ABORTED),
        ("aborted", "error", "worker_lost", EventKind.WORKER_LOST),
        ("running", None, None, None),
        ("skipped", None, None, None),
    ],
)
def test_each_ending_is_the_event_the_readme_names(
    status: str, result: str | None, reason: str | None, kind: EventKind | None
) -> None:
    assert ending_kind(status, result, reason) == kind


@pytest.mark.parametrize(
    ("newest_first", "expected"),
    [
        ([("completed", "failed")], Streak(1, 0)),
        ([("completed", "failed"), ("completed", "error"), ("aborted", "error")], Streak(3, 0)),
        ([("completed", "failed"), ("completed", "passed"), ("completed", "failed")], Streak(1, 0)),
        ([("completed", "passed"), ("completed", "failed"), ("completed", "failed")], Streak(0, 2)),
        ([("completed", "passed"), ("completed", "passed")], Streak(0, 0)),
        # Skipped records and runs still going neither extend nor break a streak.
        (
            [
                ("completed", "failed"),
                ("skipped", None),
                ("running", None),
                ("completed", "failed"),
            ],
            Streak(2, 0),
        ),
        ([("completed", "passed"), ("skipped", None), ("completed", "failed")], Streak(0, 1)),
        ([], Streak(0, 0)),
    ],
)
def test_a_failure_streak_counts_finished_runs_that_did_not_pass(
    newest_first: list[tuple[str, str | None]], expected: Streak
) -> None:
    assert streak(newest_first) == expected


def _rule(**changes: object) -> Rule:
    base = Rule(
        id=1,
        stack=1,
        name="r",
        events=("run_failed",),
        channels=(1,),
        created=T0,
        updated=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_rule_covers_its_stack_its_project_or_its_one_load_test() -> None:
    assert _rule().covers(project_id=3, load_test_id=7)
    assert _rule(project_id=3).covers(project_id=3, load_test_id=7)
    assert not _rule(project_id=4).covers(project_id=3, load_test_id=7)
    assert _rule(load_test_id=7).covers(project_id=3, load_test_id=7)
    assert not _rule(load_test_id=8).covers(project_id=3, load_test_id=7)
    assert not _rule(enabled=False).covers(project_id=3, load_test_id=7)


def test_a_rule_wants_skips_of_its_reasons_and_the_streak_of_its_n() -> None:
    skips = _rule(events=("occurrence_skipped",), skip_reasons=("overlap",))
    assert skips.wants("occurrence_skipped", skip_reason="overlap")
    assert not skips.wants("occurrence_skipped", skip_reason="missed")
    assert _rule(events=("occurrence_skipped",)).wants("occurrence_skipped", skip_reason="missed")
    three = _rule(events=("consecutive_failures",), consecutive_failures=3)
    assert [n for n in range(1, 6) if three.wants("consecutive_failures", streak=n)] == [3]
    assert not _rule().wants("run_error")


def test_the_default_text_says_what_ran_when_how_it_ended_and_where_to_look() -> None:
    notice = _failed()
    subject, text = mail_parts(notice, template=None, subject=None)

    assert subject == 'Load test "checkout" failed: 2 thresholds crossed'
    for expected in (
        "When: 2026-11-23T02:00:31Z",
        "Load test: checkout (id 7)",
        "Result: completed, failed (failed)",
        "Reason: failed: k6 thresholds were crossed",
        "http_req_duration p(95)<200: 250.5, 50.5 past the bound; checks rate==1: crossed",
        "Run: https://tw.example/cloud/v6/test_runs/42",
        "Schedule: 9, next run: 2026-11-24T02:00:00Z",
        "Event: run-42.run_failed",
    ):
        assert expected in text


def test_the_default_webhook_body_is_json_with_the_facts_as_values() -> None:
    body = json.loads(http_body(ChannelType.WEBHOOK, _failed(more=12), template=None))

    assert body["event"] == {
        "id": "run-42.run_failed",
        "kind": "run_failed",
        "title": 'Load test "checkout" failed: 2 thresholds crossed (and 12 more since the last '
        "message)",
        "at": "2026-11-23T02:00:31Z",
        "more": 12,
    }
    assert body["run"]["url"] == "https://tw.example/cloud/v6/test_runs/42"
    assert body["run"]["thresholds_failed"][0] == {
        "metric": "http_req_duration",
        "expression": "p(95)<200",
        "observed": 250.5,
        "bound": 200.0,
        "excess": 50.5,
    }
    assert body["schedule"] == {"id": 9, "next_run": "2026-11-24T02:00:00Z"}


def test_slack_gets_text_and_blocks_with_its_markup_escaped() -> None:
    notice = replace(_failed(), load_test_name="a <b> & c")
    body = json.loads(http_body(ChannelType.SLACK, notice, template=None))

    assert body["text"].startswith('Load test "a <b> & c" failed')
    section = body["blocks"][1]["text"]["text"]
    assert "a &lt;b&gt; &amp; c" in section
    assert "<https://tw.example/cloud/v6/test_runs/42|open the run>" in section


def test_teams_gets_an_adaptive_card_with_a_button_to_the_run() -> None:
    body = json.loads(http_body(ChannelType.TEAMS, _failed(), template=None))

    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["body"][0]["text"].startswith('Load test "checkout" failed')
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open the run",
            "url": "https://tw.example/cloud/v6/test_runs/42",
        }
    ]


def test_a_user_template_fills_its_variables_and_nothing_else() -> None:
    template = "${load_test.name} #${run.id}: ${run.result} ${event.more_text} $$5 ${event.id}"
    assert (
        template_problems(template, "template", channel_type=ChannelType.SLACK, sample=SAMPLE) == []
    )
    body = json.loads(http_body(ChannelType.SLACK, _failed(more=3), template=template))

    assert body == {
        "text": "checkout #42: failed and 3 more since the last message $5 run-42.run_failed"
    }


def test_every_variable_the_readme_lists_has_a_value() -> None:
    values = variables(_failed())
    assert set(values) == set(VARIABLES)
    assert all(isinstance(value, str) for value in values.values())


def test_a_webhook_template_escapes_values_inside_its_json_strings() -> None:
    notice = replace(_failed(), load_test_name='say "hi"\\')
    template = '{"name": "${load_test.name}", "id": ${run.id}}'
    assert (
        template_problems(template, "template", channel_type=ChannelType.WEBHOOK, sample=SAMPLE)
        == []
    )

    body = json.loads(http_body(ChannelType.WEBHOOK, notice, template=template))

    assert body == {"name": 'say "hi"\\', "id": 42}


@pytest.mark.parametrize(
    ("template", "code", "says"),
    [
        ("${run.id} ${run.secret}", "unknown_variable", "${run.secret} is not a template variable"),
        ("${a.b} ${__class__}", "invalid_template", "line 1, column 8"),
        ("cost: $5", "invalid_template", "write $$ for a literal $"),
        ("${run.__class__.__init__}", "invalid_template", "a $ that starts no"),
        ("{0.__class__} ${event.id!r}", "invalid_template", "column 15"),
    ],
)
def test_a_template_with_code_or_an_unknown_name_is_refused_naming_it(
    template: str, code: str, says: str
) -> None:
    (problem,) = template_problems(
        template, "template", channel_type=ChannelType.SLACK, sample=SAMPLE
    )

    assert (problem.code, problem.target) == (code, "template")
    assert says in problem.message


def test_a_webhook_template_that_is_not_json_once_filled_is_refused() -> None:
    (problem,) = template_problems(
        '{"status": ${run.status}}', "template", channel_type=ChannelType.WEBHOOK, sample=SAMPLE
    )

    assert (problem.code, problem.target) == ("invalid_json", "template")
    assert "between quotes" in problem.message


def test_format_specifications_and_attributes_stay_literal_text() -> None:
    # Not string.Template's job, and never str.format's: braces without $ are left alone.
    assert render("{run.id} {0} %s ${run.id}", {"run.id": "42"}) == "{run.id} {0} %s 42"


def test_a_skip_and_an_expiry_say_how_many_and_which_schedule() -> None:
    skip = Notice(
        event_id="skip-5",
        kind="occurrence_skipped",
        at=T0,
        stack=1,
        load_test_id=7,
        load_test_name="checkout",
        skip=NoticeSkip(reason="missed", count=12, first_at=T0, last_at=T0 + timedelta(hours=11)),
        schedule_id=9,
    )
    assert skip.title == '12 occurrences of load test "checkout" were skipped (missed)'
    _, text = mail_parts(skip, template=None, subject=None)
    assert "Occurrences: 2026-11-23T02:00:00Z to 2026-11-23T13:00:00Z" in text
    assert "Schedule: 9, next run: none remains" in text

    expired = replace(skip, kind="schedule_expired", skip=None)
    assert expired.title == 'The schedule of load test "checkout" has ended: no occurrence remains'


def test_an_email_subject_template_is_one_line() -> None:
    subject, _ = mail_parts(_failed(), template=None, subject="[${event.kind}]\n${event.title}")
    assert subject == '[run_failed] Load test "checkout" failed: 2 thresholds crossed'
