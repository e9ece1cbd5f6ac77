"""The views in the HTML report: a filterable section each, escaped values, and trend lines
once the history has recorded a view's count."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reconcile.history import store as history
from reconcile.model import Status
from reconcile.report import html
from reconcile.views import ViewOptions, build
from tests.factories import AS_OF, ca_cert, intune_cert, result_with, verdict
from tests.helpers import engine_of, record_run

HOSTILE = "<img src=x onerror=alert(1)>"


def result():
    revoked = verdict(
        Status.REVOKED,
        ca=ca_cert(0x51, revoked_at=AS_OF - timedelta(days=1)),
        intune=intune_cert(0x51, device_name=HOSTILE),
    )
    with engine_of() as db:
        views = build((revoked,), db, (), ViewOptions(as_of=AS_OF))
    return replace(result_with(), views=views)


def test_each_view_is_its_own_filterable_section_with_escaped_values():
    page = html.render(result())
    assert page.count('class="view"') == 1  # only non-empty views get a table
    assert 'data-view-filter="view-revoked-installed"' in page
    assert "still installed (a security finding): 1" in page
    assert "Installed, expiring without a delivered renewal: 0" in page
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("<script>") == 1


def test_the_trend_chart_draws_a_view_once_the_history_recorded_it(tmp_path):
    db = history.open_db(tmp_path / "h.sqlite3")
    try:
        record_run(db, result(), 1, 1.0)
        runs = history.trend(db)
    finally:
        db.close()
    page = html.render(result(), None, runs)
    assert page.count("<polyline") == 3
    assert "1 revoked installed</title>" in page
