from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from reconcile.errors import InputError
from reconcile.evidence.add import options_key
from reconcile.evidence.parse import parse_log
from reconcile.evidence.source import ParseOptions
from reconcile.evidence.store import SCHEMA_VERSION, AddResult, EvidenceStore
from reconcile.settings import Settings


def test_round_trip_keeps_every_field(tmp_path: Path, logs: Path, pixel: ParseOptions) -> None:
    parsed = parse_log(logs / "android-certrep-failure.log", pixel)
    with EvidenceStore(tmp_path / "evidence.db") as store:
        assert store.add(parsed, options_key(pixel)) is AddResult.ADDED
        assert store.records() == list(parsed.records)


def test_adding_the_same_file_again_changes_nothing(
    tmp_path: Path, logs: Path, pixel: ParseOptions
) -> None:
    parsed = parse_log(logs / "android-omadm-article.log", pixel)
    with EvidenceStore(tmp_path / "evidence.db") as store:
        store.add(parsed, options_key(pixel))
        assert store.add(parsed, options_key(pixel)) is AddResult.UNCHANGED
        assert len(store.records()) == 1


def test_reading_a_file_another_way_replaces_it(tmp_path: Path, logs: Path) -> None:
    path = logs / "ios-profiled-article.log"
    undated = ParseOptions(device="iPhone")
    dated = ParseOptions(device="iPhone", log_date=date(2020, 1, 30))
    with EvidenceStore(tmp_path / "evidence.db") as store:
        store.add(parse_log(path, undated), options_key(undated))
        result = store.add(parse_log(path, dated), options_key(dated))
        (record,) = store.records()

    assert result is AddResult.REPLACED
    assert record.installed_at is not None


def test_records_of_one_device_ignore_case_and_dns_suffix(tmp_path: Path, logs: Path) -> None:
    windows = parse_log(logs / "windows-events.xml", ParseOptions())
    android = parse_log(logs / "android-omadm-article.log", ParseOptions(device="PIXEL-7"))
    with EvidenceStore(tmp_path / "evidence.db") as store:
        store.add(windows, "a")
        store.add(android, "b")
        assert [r.device for r in store.records("desktop-7q2k9lm")] == [
            "DESKTOP-7Q2K9LM.corp.contoso.com"
        ]
        assert [r.device for r in store.records("pixel-7")] == ["PIXEL-7"]


def test_schema_version_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    EvidenceStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    EvidenceStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))

    with pytest.raises(InputError, match="newer than this reconcile"):
        EvidenceStore(path)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    path.write_text("not sqlite at all " * 100, encoding="utf-8")

    with pytest.raises(InputError, match="not a usable evidence database"):
        EvidenceStore(path)


def test_default_path_is_in_the_user_data_dir(tmp_path: Path) -> None:
    assert Settings().evidence_path().name == "evidence.db"
    assert str(tmp_path / "xdg-data") in str(Settings().evidence_path())
    assert Settings(evidence_db=tmp_path / "e.db").evidence_path() == tmp_path / "e.db"


def test_keys_stored_by_the_old_rule_are_recomputed_on_open(tmp_path: Path, logs: Path) -> None:
    """Schema 1 cut every device name at its first dot; schema 2 keeps non-host names whole."""
    path = tmp_path / "evidence.db"
    megan = ParseOptions(device="megan.bowen@contoso.com")
    with EvidenceStore(path) as store:
        store.add(parse_log(logs / "android-omadm-article.log", megan), options_key(megan))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE records SET device_key = 'megan'")
        db.execute("DELETE FROM schema_version WHERE version > 1")
    with EvidenceStore(path, create=False) as store:
        assert store.records("megan.bowen@contoso.com")
        assert store.records("megan") == []
