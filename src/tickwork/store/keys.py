"""The Redis key layout. Every key tickwork writes is built here, under one prefix.

    {p}:ids:{kind}                     STRING  last id given out, per kind (INCR)
    {p}:project:{id}                   HASH    project record
    {p}:stack:{stack}:projects         ZSET    project ids (score = id): stable, O(page) listing
    {p}:stack:{stack}:project_names    HASH    project name -> id (names are unique in a stack)
    {p}:load_test:{id}                 HASH    load test record (runner config as JSON)
    {p}:load_test:{id}:script          STRING  the k6 script
    {p}:load_test:{id}:schedule        STRING  id of the load test's one schedule
    {p}:load_test:{id}:runs            ZSET    run ids of the load test (score = created, µs)
    {p}:load_test:{id}:last_run        STRING  id of its latest run that executes (not skipped)
    {p}:stack:{stack}:load_tests       ZSET    load test ids
    {p}:project:{id}:load_tests        ZSET    load test ids of a project
    {p}:project:{id}:load_test_names   HASH    load test name -> id (unique in a project)
    {p}:stack:{stack}:load_tests_named:{name}
                                       ZSET    ids of the stack's load tests called {name}
                                               (the exact-name filter of the stack-wide list)
    {p}:schedule:{id}                  HASH    schedule record: wire request, core trigger,
                                               deactivated, fired_through_us, next_us, version;
                                               committed_us: the latest occurrence the fire
                                               commit settled (written by it alone);
                                               forgotten_us: the latest occurrence whose run
                                               retention removed (written by it alone);
                                               since_us (its timing's start), pauses (JSON)
    {p}:schedule:{id}:ledger           ZSET    run id -> the occurrence it settles (µs): every
                                               fired or skipped run of the schedule, written
                                               by the fire commit (the occurrence ledger)
    {p}:stack:{stack}:schedules        ZSET    schedule ids
    {p}:due                            ZSET    schedule id -> next fire instant (ms); only
                                               active schedules with an occurrence left
    {p}:resume                         ZSET    schedule id -> resume_at (ms) of each paused
                                               schedule that resumes on its own
    {p}:stack:{stack}:windows          HASH    blackout window id -> JSON: the stack-wide windows
                                               (a schedule's own are in its hash, "windows")
    {p}:stack:{stack}:windows_version  STRING  INCR on each change of those: the fire commit
                                               refuses a plan made with an older version
    {p}:nudge                          LIST    wakes the scheduler when a schedule changes
    {p}:backfill:{lt}                  LIST    "{run_id}:{queue}" of each backfilled run of load
                                               test {lt} waiting, under overlap ``skip``, for
                                               the run before it to end (oldest occurrence
                                               first); their jobs (``backfill-{schedule_id}-
                                               {occurrence_ms}``) are not queued yet
    {p}:backfill:{lt}:current          STRING  the run whose end releases the list's head
    {p}:backfill:load_tests            SET     load tests with a waiting list or a current run
                                               (the leader's feeder walks it, backfill.py)
    {p}:run:{id}                       HASH    test run record
    {p}:stack:{stack}:runs             ZSET    run ids (score = created, µs: lists go by creation,
                                               and run ids reserved ahead are not in that order)
    {p}:run:{id}:executed              STRING  set once by the worker that executes the run
    {p}:run:{id}:abort                 STRING  abort requested: e-mail of the requester (the
                                               worker polls it); expires after 7 days
    {p}:unclaimed                      ZSET    run id -> created (µs) of each run whose job is
                                               queued and that no worker has claimed yet; a
                                               run stranded there is ended by the leader
    {p}:stacks                         SET     stacks that have runs (retention walks them)
    {p}:retention:load_tests           SET     load tests that may hold more runs than the
                                               per-load-test retention count
    {p}:running                        ZSET    run id -> heartbeat deadline (ms, Redis clock)
                                               of each run a worker is executing; a run past
                                               its deadline is ended by the reaper
    {p}:idempotency:{stack}:{lt}:{key} STRING  run id started with K6-Idempotency-Key (10 min)
    {p}:kragle:schedule:{id}           HASH    Kragle timing template: stack, name, once,
                                               config (JSON as given), anchor_us, version
    {p}:stack:{stack}:kragle_schedules ZSET    template ids (score = id): page-numbered listing
    {p}:kragle:schedule:{id}:jobs      HASH    load test id -> job id: the template's jobs (one
                                               per load test)
    {p}:stack:{stack}:kragle_jobs      ZSET    Kragle job ids (score = id)
    {p}:load_test:{id}:kragle_jobs     HASH    job id -> template id: the jobs that fire the
                                               load test (deleted with it)
                                               A Kragle job is a {p}:schedule:{id} record of
                                               dialect "kragle" (its id is the job's id), not
                                               the load test's one k6 schedule: it is in the
                                               due index but not in {p}:stack:{stack}:schedules
    {p}:report:{uuid}                  HASH    report schedule: attrs (JSON), stack,
                                               scheduled_at_us, scheduled_by, start_us, end_us,
                                               load_test_id, schedule_id
    {p}:stack:{stack}:reports          ZSET    report ids (score = scheduled_at, microseconds)
                                               A report runs as an internal load test (kind
                                               "report", runner {"type": "report"}, in no
                                               listing) whose one schedule, of dialect
                                               "report", is in the due index only
    {p}:stack:{stack}:audit:{kind}     ZSET    audit entries (JSON, see audit.py) of the stack's
                                               resources of one kind, scored by time (µs)
    {p}:audit:{kind}:{id}              ZSET    the same entries of one resource (kept after
                                               the resource is deleted, until retention); a
                                               schedule's expiry only once its record changes
                                               (until then read from the record: audit.py)
    {p}:lease:{name}                   STRING  leader lease: "{term}:{token}", PX = lease TTL
    {p}:lease:{name}:term              STRING  fencing number, INCR on every new term
    {p}:lease:{name}:released          LIST    pushed on graceful release: wakes a standby
    {p}:rate:token:{sha256}            STRING  request rate limit of the API token whose
                                               SHA-256 (hex) this is: the GCRA theoretical
                                               arrival time (µs, Redis clock); PX until that
                                               instant, so an idle caller has no key
    {p}:rate:stack:{stack}             STRING  the same, for every request in the stack
    {p}:rate:client:{address}          STRING  the same, for anonymous requests from one
                                               client address
    {p}:session:{sha256}               HASH    console session whose id (the cookie) has this
                                               SHA-256 (hex): e-mail, the token's SHA-256,
                                               stack, CSRF token, viewer's zone, created;
                                               EXPIRE = the session's lifetime (sessions.py)

    {p}:notify:channel:{id}            HASH    notification channel: stack, name, type, url,
                                               secret, headers (JSON), to (JSON), template,
                                               subject, created, updated (secrets included:
                                               the API never answers them)
    {p}:stack:{stack}:notify_channels  ZSET    channel ids (score = id)
    {p}:notify:channel:{id}:rules      SET     ids of the rules that send to the channel
    {p}:notify:rule:{id}               HASH    notification rule: stack, name, events (JSON),
                                               channels (JSON), project_id, load_test_id,
                                               consecutive_failures, skip_reasons (JSON),
                                               quiet_seconds, enabled, created, updated
    {p}:stack:{stack}:notify_rules     ZSET    rule ids (score = id); that it exists is the
                                               one read a run's ending makes to know whether
                                               its stack has rules
    {p}:notify:rule:{id}:windows       HASH    "{kind}:{load_test}" -> "{until_ms} {held}": the
                                               rule's storm windows (one message per window;
                                               ``held`` counts the events kept back since)
    {p}:notify:watch:{kind}            SET     ids of the rules naming occurrence_skipped or
                                               schedule_expired: the leader looks (every few
                                               seconds, not per fire) whether any exists
    {p}:notify:event:{id}              STRING  an event waiting for its notify job (JSON: a run
                                               ended, a fire batch to look at, a channel's
                                               test); expires after 7 days
    {p}:notify:event:{id}:decisions    HASH    rule id -> "send:{held}" | "quiet" | "gone": each
                                               rule's storm decision for the event, made once
    {p}:notify:delivery:{event}:{channel}
                                       HASH    one message of one event to one channel: status
                                               (queued, sending, sent, failed), attempts,
                                               answer_status, error, response, created_us, ...
    {p}:notify:channel:{id}:deliveries ZSET    delivery ids ("{event}:{channel}") by creation (µs)
    {p}:notify:run:{id}:deliveries     ZSET    delivery ids of the run's events
    {p}:stack:{stack}:notify_deliveries
                                       ZSET    delivery ids of the stack (retention walks it)
    {p}:notify:stacks                  SET     stacks with deliveries

RQ keeps its own keys (``rq:*``) in the same database; job ids are
``fire-{schedule_id}-{occurrence_ms}`` for scheduled runs, ``run-{run_id}`` otherwise, and
``notify-{event_id}`` for notification jobs, which go on the queue ``{p}-notifications``
(RQ 3 allows only letters, digits, "_" and "-" in job ids).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "tw"

    def ids(self, kind: str) -> str:
        return f"{self.prefix}:ids:{kind}"

    def project(self, project_id: int) -> str:
        return f"{self.prefix}:project:{project_id}"

    def stack_index(self, stack: int, kind: str) -> str:
        return f"{self.prefix}:stack:{stack}:{kind}"

    def load_test(self, load_test_id: int) -> str:
        return f"{self.prefix}:load_test:{load_test_id}"

    def load_test_script(self, load_test_id: int) -> str:
        return f"{self.prefix}:load_test:{load_test_id}:script"

    def load_test_schedule(self, load_test_id: int) -> str:
        return f"{self.prefix}:load_test:{load_test_id}:schedule"

    def load_test_runs(self, load_test_id: int) -> str:
        return f"{self.prefix}:load_test:{load_test_id}:runs"

    def load_test_last_run(self, load_test_id: int) -> str:
        return f"{self.prefix}:load_test:{load_test_id}:last_run"

    def project_load_tests(self, project_id: int) -> str:
        return f"{self.prefix}:project:{project_id}:load_tests"

    def project_names(self, stack: int) -> str:
        return f"{self.prefix}:stack:{stack}:project_names"

    def project_load_test_names(self, project_id: int) -> str:
        return f"{self.prefix}:project:{project_id}:load_test_names"

    def load_tests_named(self, stack: int, name: str) -> str:
        return f"{self.prefix}:stack:{stack}:load_tests_named:{name}"

    def schedule(self, schedule_id: int) -> str:
        return f"{self.prefix}:schedule:{schedule_id}"

    def stack_windows(self, stack: int) -> str:
        return f"{self.prefix}:stack:{stack}:windows"

    def stack_windows_version(self, stack: int) -> str:
        return f"{self.prefix}:stack:{stack}:windows_version"

    def schedule_ledger(self, schedule_id: int) -> str:
        return f"{self.prefix}:schedule:{schedule_id}:ledger"

    @property
    def due(self) -> str:
        return f"{self.prefix}:due"

    @property
    def resume(self) -> str:
        return f"{self.prefix}:resume"

    def backfill_waiting(self, load_test_id: int) -> str:
        return f"{self.prefix}:backfill:{load_test_id}"

    def backfill_current(self, load_test_id: int) -> str:
        return f"{self.prefix}:backfill:{load_test_id}:current"

    @property
    def backfill_load_tests(self) -> str:
        return f"{self.prefix}:backfill:load_tests"

    @property
    def nudge(self) -> str:
        return f"{self.prefix}:nudge"

    def run(self, run_id: int) -> str:
        return f"{self.prefix}:run:{run_id}"

    def run_executed(self, run_id: int) -> str:
        return f"{self.prefix}:run:{run_id}:executed"

    def run_abort(self, run_id: int) -> str:
        return f"{self.prefix}:run:{run_id}:abort"

    @property
    def running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def unclaimed(self) -> str:
        return f"{self.prefix}:unclaimed"

    @property
    def stacks(self) -> str:
        return f"{self.prefix}:stacks"

    @property
    def retention_load_tests(self) -> str:
        return f"{self.prefix}:retention:load_tests"

    def idempotency(self, stack: int, load_test_id: int, key: str) -> str:
        return f"{self.prefix}:idempotency:{stack}:{load_test_id}:{key}"

    def kragle_schedule(self, template_id: int) -> str:
        return f"{self.prefix}:kragle:schedule:{template_id}"

    def kragle_schedule_jobs(self, template_id: int) -> str:
        return f"{self.prefix}:kragle:schedule:{template_id}:jobs"

    def load_test_kragle_jobs(self, load_test_id: int) -> str:
        return f"{self.prefix}:load_test:{load_test_id}:kragle_jobs"

    def report(self, report_id: str) -> str:
        return f"{self.prefix}:report:{report_id}"

    def audit_feed(self, stack: int, kind: str) -> str:
        return f"{self.prefix}:stack:{stack}:audit:{kind}"

    def audit_of(self, kind: str, resource_id: str) -> str:
        return f"{self.prefix}:audit:{kind}:{resource_id}"

    def lease(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    def lease_released(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}:released"

    def lease_term(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}:term"

    def rate_token(self, sha256_hex: str) -> str:
        return f"{self.prefix}:rate:token:{sha256_hex}"

    def rate_stack(self, stack: int) -> str:
        return f"{self.prefix}:rate:stack:{stack}"

    def rate_client(self, address: str) -> str:
        return f"{self.prefix}:rate:client:{address}"

    def session(self, sha256_hex: str) -> str:
        return f"{self.prefix}:session:{sha256_hex}"

    def notify_channel(self, channel_id: int) -> str:
        return f"{self.prefix}:notify:channel:{channel_id}"

    def notify_channel_rules(self, channel_id: int) -> str:
        return f"{self.prefix}:notify:channel:{channel_id}:rules"

    def notify_rule(self, rule_id: int) -> str:
        return f"{self.prefix}:notify:rule:{rule_id}"

    def notify_rule_windows(self, rule_id: int) -> str:
        return f"{self.prefix}:notify:rule:{rule_id}:windows"

    def notify_watch(self, kind: str) -> str:
        return f"{self.prefix}:notify:watch:{kind}"

    def notify_event(self, event_id: str) -> str:
        return f"{self.prefix}:notify:event:{event_id}"

    def notify_decisions(self, event_id: str) -> str:
        return f"{self.prefix}:notify:event:{event_id}:decisions"

    def notify_delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}:notify:delivery:{delivery_id}"

    def notify_channel_deliveries(self, channel_id: int) -> str:
        return f"{self.prefix}:notify:channel:{channel_id}:deliveries"

    def notify_run_deliveries(self, run_id: int) -> str:
        return f"{self.prefix}:notify:run:{run_id}:deliveries"

    @property
    def notify_stacks(self) -> str:
        return f"{self.prefix}:notify:stacks"
