"""The renewal check over the intune table finds exactly the candidates the Python check found."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.engine.db import Database
from reconcile.engine.keys import device_fold_sql, device_folds
from reconcile.engine.renewal import candidate_of, renewed
from reconcile.engine.tables import create_tables, load_side
from reconcile.identity import device_fold
from reconcile.intune.side import IntuneSide
from reconcile.model import IntuneCertificate, Verdict
from tests.engine import reference_views
from tests.factories import AS_OF, ca_cert, intune_cert, verdict

SLOW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Few names, several of one device_key: links must meet often enough to matter.
_NAMES = [None, "", "PC-01", "pc-01.corp.contoso.com", " PC-01 ", "Straße-01", "STRASSE-01"]
_NAMES += ["PC-01"] * 4
_TIMES = [None, AS_OF - timedelta(days=300), AS_OF - timedelta(days=5), AS_OF]
_THUMB = "AB" * 20
names = st.sampled_from(_NAMES)
times = st.sampled_from(_TIMES)
profiles = st.sampled_from(
    [("profile-1", "Windows SCEP"), (None, "Windows SCEP"), ("", "WINDOWS scep"), (None, None)]
)


@st.composite
def records(draw: st.DrawFn) -> IntuneCertificate:
    serial = draw(st.sampled_from([None, 1, 2, 3]))
    profile_id, profile_name = draw(profiles)
    return intune_cert(
        serial,
        state=draw(st.sampled_from(["installed", "installed", "installed", "failed"])),
        thumbprint=_THUMB if serial is None else None,
        device_id=draw(st.sampled_from([None, None, None, "", "dev-1"])),
        device_name=draw(names),
        profile_id=profile_id,
        profile_name=profile_name,
        issued_at=draw(times),
    )


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[Verdict], list[IntuneCertificate]]:
    """Records, and candidates whose record is mostly one of them (as a join would match)."""
    reported = draw(st.lists(records(), min_size=2, max_size=12))
    expiring = []
    for _ in range(draw(st.integers(1, 6))):
        record = draw(st.sampled_from(reported) | records())
        serial = record.serial if record.serial is not None else draw(st.sampled_from([1, 2, 3]))
        ca = ca_cert(
            serial,
            not_before=draw(times),
            thumbprint=draw(st.sampled_from([None, _THUMB])),
        )
        expiring.append(verdict(ca=ca, intune=record))
        if draw(st.booleans()):
            # A later record of the same link (or nearly: a name spelt otherwise, a failure).
            reported.append(
                replace(
                    record,
                    serial=draw(st.sampled_from([None, 1, 2, 3])),
                    thumbprint=draw(st.sampled_from([None, _THUMB])),
                    device_name=draw(names),
                    issued_at=draw(times),
                    delivered=draw(st.booleans()),
                )
            )
    return expiring, reported


@SLOW
@given(runs())
def test_the_engine_finds_the_renewals_views_finds(
    run: tuple[list[Verdict], list[IntuneCertificate]],
) -> None:
    expiring, reported = run
    side = IntuneSide.from_records(reported)
    with Database() as db:
        create_tables(db)
        load_side(db, side)
        found = renewed(db, [candidate_of(v) for v in expiring])
    assert found == reference_views.renewed(expiring, side.entries)


def test_a_newer_delivery_of_the_same_profile_is_a_renewal_and_the_own_record_is_not() -> None:
    own = intune_cert(1, issued_at=AS_OF - timedelta(days=300))
    newer = intune_cert(2, issued_at=AS_OF - timedelta(days=5), device_name="pc-01.corp")
    other_profile = intune_cert(3, issued_at=AS_OF, profile_id="profile-2")
    first = verdict(ca=ca_cert(1, not_before=AS_OF - timedelta(days=300)), intune=own)
    second = verdict(ca=ca_cert(2, not_before=AS_OF - timedelta(days=5)), intune=newer)
    side = IntuneSide.from_records([own, newer, other_profile])
    with Database() as db:
        create_tables(db)
        load_side(db, side)
        assert renewed(db, [candidate_of(first), candidate_of(second)]) == {0}
        assert renewed(db, [None]) == set()


_CHARS = st.sampled_from(list("aZ09-_.@ \t\x0b\x1c\x1f\n") + ["ß", "İ", "é", "٣", "\u00a0"])
_LABEL = st.text(st.sampled_from([*"aZ09-_", "é", "٣"]), min_size=1, max_size=4)
_LABELS = st.lists(st.sampled_from(["", "10"]) | _LABEL, min_size=1, max_size=4)
_HOSTS = st.tuples(
    st.sampled_from(["", " ", "\x1c"]), _LABELS.map(".".join), st.sampled_from(["", ".", "@x"])
).map("".join)
_TEXT = st.text(_CHARS, max_size=12) | _HOSTS | _HOSTS


@SLOW
@given(st.lists(_TEXT, max_size=20))
def test_device_keys_in_sql_equal_device_fold(texts: list[str]) -> None:
    with Database() as db:
        db.execute("CREATE TABLE names (position INTEGER, name VARCHAR)")
        db.insert("names", {"position": "INTEGER", "name": "VARCHAR"}, enumerate(texts))
        device_folds(db, "folds", "SELECT name FROM names")
        found = db.rows(f"SELECT {device_fold_sql('name', 'folds')} FROM names ORDER BY position")
    assert [key for (key,) in found] == [device_fold(t) for t in texts]
