"""The run lifecycle table and how each ending is recorded, in the k6 v6 vocabulary."""

from __future__ import annotations

import pytest

from tickwork.core.lifecycle import (
    TERMINAL,
    TRANSITIONS,
    Outcome,
    Result,
    Status,
    allowed,
    ending_of,
    is_terminal,
)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("created", "initializing", id="worker_claims_a_created_run"),
        pytest.param("created", "queued", id="created_may_be_queued"),
        pytest.param("queued", "initializing", id="worker_claims_a_queued_run"),
        pytest.param("created", "aborted", id="api_aborts_before_start"),
        pytest.param("initializing", "running", id="runner_starts"),
        pytest.param("initializing", "completed", id="error_before_start_completes_with_error"),
        pytest.param("initializing", "aborted", id="abort_while_initializing"),
        pytest.param("running", "completed", id="runner_ends"),
        pytest.param("running", "aborted", id="abort_timeout_or_lost_while_running"),
        pytest.param("running", "processing_metrics", id="running_to_processing_metrics"),
        pytest.param("processing_metrics", "completed", id="metrics_processed"),
    ],
)
def test_forward_moves_are_allowed(old: str, new: str) -> None:
    assert allowed(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("created", "running", id="no_running_without_initializing"),
        pytest.param("created", "completed", id="no_result_without_a_worker"),
        pytest.param("running", "initializing", id="never_backwards"),
        pytest.param("running", "running", id="no_self_move"),
        pytest.param("completed", "aborted", id="completed_is_final"),
        pytest.param("aborted", "completed", id="aborted_is_final_late_result_refused"),
        pytest.param("aborted", "initializing", id="aborted_run_is_never_claimed"),
        pytest.param("skipped", "initializing", id="skipped_occurrence_never_runs"),
        pytest.param("completed", "completed", id="second_delivery_cannot_rewrite"),
        pytest.param("created", "timed_out", id="timed_out_is_a_reason_not_a_status"),
        pytest.param("bogus", "running", id="unknown_old_status"),
        pytest.param("running", "bogus", id="unknown_new_status"),
    ],
)
def test_other_moves_are_refused(old: str, new: str) -> None:
    assert not allowed(old, new)


def test_terminal_statuses_lead_nowhere_and_every_other_status_can_be_aborted() -> None:
    for status, targets in TRANSITIONS.items():
        if status in TERMINAL:
            assert targets == frozenset()
            assert is_terminal(status)
        else:
            assert Status.ABORTED in targets
            assert not is_terminal(status)


@pytest.mark.parametrize(
    ("outcome", "status", "result", "code"),
    [
        pytest.param(Outcome.PASSED, "completed", "passed", None, id="passed"),
        pytest.param(Outcome.FAILED, "completed", "failed", None, id="thresholds_crossed"),
        pytest.param(Outcome.ERROR, "completed", "error", None, id="runner_error"),
        pytest.param(Outcome.TIMED_OUT, "aborted", "error", 4, id="timed_out"),
        pytest.param(Outcome.ABORTED_BY_USER, "aborted", "error", 5, id="aborted_by_user"),
        pytest.param(Outcome.WORKER_LOST, "aborted", "error", 6, id="worker_lost"),
        pytest.param(Outcome.WORKER_STOPPED, "aborted", "error", 6, id="worker_stopped"),
    ],
)
def test_each_outcome_ends_in_k6_vocabulary(
    outcome: Outcome, status: str, result: str, code: int | None
) -> None:
    ending = ending_of(outcome)
    assert (ending.status.value, ending.result.value, ending.code) == (status, result, code)
    assert ending.result in set(Result)
    assert is_terminal(ending.status)


def test_ending_message_starts_with_the_reason() -> None:
    assert ending_of(Outcome.TIMED_OUT).message("k6 ran longer than 2 s") == (
        "timed_out: k6 ran longer than 2 s"
    )
    assert ending_of(Outcome.PASSED).message("") == "passed"
