from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconcile.errors import InputError, UsageError
from reconcile.evidence.add import add_logs, parse_options, render_added
from reconcile.evidence.store import AddResult, EvidenceStore


def test_add_reports_what_each_file_proved(tmp_path: Path, logs: Path) -> None:
    paths = [logs / "android-omadm-article.log", logs / "android-pkioperation-500.log"]
    with EvidenceStore(tmp_path / "evidence.db") as store:
        added = add_logs(paths, store, parse_options(device="PIXEL-7"))
        again = add_logs(paths[:1], store, parse_options(device="PIXEL-7"))

    text = render_added(added)
    assert f"{paths[0]}: android log, added" in text
    assert "    installed (reached access_granted) at 2018-02-27T05:18:45Z" in text
    assert "    failed (reached pki_operation_sent) at 2024-03-06T10:40:14Z" in text
    assert "HTTP 500 Internal Server Error on PKIOperation" in text
    assert "  8 lines read, 2 skipped" in text
    assert [a.result for a in again] == [AddResult.UNCHANGED]
    assert "already added" in render_added(again)


def test_undated_logs_say_how_to_date_them(tmp_path: Path, logs: Path) -> None:
    with EvidenceStore(tmp_path / "evidence.db") as store:
        added = add_logs([logs / "ios-profiled-article.log"], store, parse_options("iPhone"))

    assert "--log-date YYYY-MM-DD" in render_added(added)


def test_one_bad_file_stores_nothing(tmp_path: Path, logs: Path) -> None:
    paths = [logs / "windows-events.xml", logs / "not-a-log.txt"]
    with EvidenceStore(tmp_path / "evidence.db") as store:
        with pytest.raises(InputError, match="not-a-log.txt"):
            add_logs(paths, store, parse_options())
        assert store.records() == []


def test_a_renamed_copy_is_the_same_evidence(tmp_path: Path, logs: Path) -> None:
    copy = tmp_path / "copy.xml"
    shutil.copy(logs / "windows-events.xml", copy)
    with EvidenceStore(tmp_path / "evidence.db") as store:
        add_logs([logs / "windows-events.xml"], store, parse_options())
        (added,) = add_logs([copy], store, parse_options())
        assert added.result is AddResult.UNCHANGED
        assert len(store.records()) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"timezone": "Mars/Olympus"}, "--timezone"), ({"log_date": "30/01/2020"}, "--log-date")],
)
def test_bad_options_are_usage_errors(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options(**kwargs)
