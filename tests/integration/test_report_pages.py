"""The report list reads one page of the stack's index (``Reports.page``), not every record:
each page must still be the same slice of the list that reading every record gives
(``Reports.select``: oldest first, reports of one instant in creation order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tickwork.core.instants import to_us
from tickwork.core.reports import report_schedule
from tickwork.store import Store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ATTRS = {
    "name": "r",
    "schedule": "daily",
    "timezone": "UTC",
    "send_via": "email",
    "send_to": ["a@b.it"],
    "type": "generic",
    "hosts": ["h"],
}
REPORTS_PER_INSTANT = [1, 3, 1, 4, 2, 5]
"""Several reports share most instants, more than a small page holds. The index orders those
by id (a random UUID), creation order by load test id: a page cut from the index alone would
put them in the wrong order (all but certainly: the ids would have to fall in creation order
at every shared instant, odds of 1 in 34,560)."""


def test_every_page_of_the_report_list_is_that_slice_of_every_report_in_creation_order(
    store: Store,
) -> None:
    instants = [T0 + timedelta(minutes=i) for i in range(len(REPORTS_PER_INSTANT))]
    for at, count in zip(instants, REPORTS_PER_INSTANT, strict=True):
        for _ in range(count):
            store.reports.create(
                1,
                attrs=ATTRS,
                schedule=report_schedule("daily", "UTC", now=at),
                now=at,
                scheduled_by=None,
            )
    us = [to_us(at) for at in instants]
    ranges = [
        (None, None),
        (us[1], None),
        (None, us[3]),
        (us[1], us[3]),
        (us[3], us[3]),  # one instant: every report on it ties
        (us[-1] + 1, None),  # after the last: empty
    ]
    total_reports = sum(REPORTS_PER_INSTANT)
    pages = 0
    for since, until in ranges:
        every = store.reports.select(1, since_us=since, until_us=until)
        for top in range(1, total_reports + 2):
            for skip in range(total_reports + 2):
                page, total = store.reports.page(
                    1, skip=skip, top=top, since_us=since, until_us=until
                )
                assert total == len(every)
                expected = [r.id for r in every[skip : skip + top]]
                assert [r.id for r in page] == expected, (since, until, skip, top)
                pages += 1

    assert len(store.reports.select(1)) == total_reports
    assert pages == len(ranges) * (total_reports + 1) * (total_reports + 2)
    assert store.reports.page(2, skip=0, top=10) == ([], 0)  # another stack's are not listed
