"""The engine against the Python join it replaces, on random inputs (hypothesis)."""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile import engine, join
from reconcile.intune.side import IntuneSide
from reconcile.model import IntuneSource
from tests.factories import AS_OF, ca_cert, device, intune_cert

SERIALS = st.integers(min_value=0, max_value=8)
THUMBPRINTS = st.sampled_from([None, "AB" * 20, "CD" * 20, "EF" * 32, ""])
ISSUERS = st.sampled_from(
    [None, "", "Contoso Issuing CA", "CN=Contoso Issuing CA, DC=corp", "Fabrikam CA", " ", "Ünï CA"]
)
NAMES = st.sampled_from([None, "", "PC-01", "pc-01", "PC-02", "Straße", "STRASSE", "ÄPC", "äpc"])
TEMPLATES = st.sampled_from([None, "", "1.2.3.4", "1.2.3.4", "1.2.3.5"])
TEMPLATE_NAMES = st.sampled_from([None, "", "Intune-SCEP", "intune-scep", "WebServer", "Ünï"])
PROFILES = st.sampled_from([None, "", "profile-1", "1.2.3.4", "1.2.3.4", "1.2.3.5"])
STATES = st.sampled_from(["installed", "installed", "installFailed", "issued", "someFutureState"])
DEVICE_IDS = st.sampled_from([None, None, "", "dev-PC-01", "dev-x"])


DAYS = (-400, -30, -12, -11, -10, -9, -5, -3, -2, -1, 0, 1, 30, 365)


@st.composite
def times(draw, low=-400, high=365):
    if draw(st.integers(0, 7)) == 0:
        return None
    days = draw(st.sampled_from([d for d in DAYS if low <= d <= high]))
    minutes = draw(st.sampled_from([0, 0, 1, 59, 60 * 12]))
    micro = draw(st.sampled_from([0, 1, 999_999, 500_000]))
    return AS_OF + timedelta(days=days, minutes=minutes, microseconds=micro)


@st.composite
def ca_certs(draw):
    cn = draw(NAMES)
    return ca_cert(
        serial=draw(SERIALS),
        thumbprint=draw(THUMBPRINTS),
        issuer=draw(ISSUERS),
        common_name=cn,
        subject=draw(st.sampled_from([None, f"CN={cn}", "CN=PC-02, O=x"])),
        san=draw(st.sampled_from([None, "DNS=PC-01.corp", ""])),
        template_oid=draw(TEMPLATES),
        template_name=draw(TEMPLATE_NAMES),
        not_before=draw(times(high=1)),
        not_after=draw(times(low=-2)),
        revoked_at=draw(times()) if draw(st.integers(0, 9)) == 0 else None,
        line=draw(st.integers(min_value=1, max_value=4)),
    )


@st.composite
def intune_certs(draw):
    state = draw(STATES)
    serial = draw(st.one_of(st.none(), SERIALS))
    return intune_cert(
        serial=serial,
        state=state,
        source=draw(st.sampled_from(list(IntuneSource))),
        thumbprint=draw(THUMBPRINTS),
        issuer=draw(ISSUERS),
        device_name=draw(NAMES),
        device_id=draw(DEVICE_IDS),
        profile_id=draw(PROFILES),
        profile_name=draw(TEMPLATE_NAMES),
        issued_at=draw(times(high=1)),
        state_changed_at=draw(times()),
    )


@st.composite
def devices(draw):
    if draw(st.booleans()):
        return None
    names = draw(st.lists(NAMES.filter(bool), max_size=4))
    return [device(n, id=draw(DEVICE_IDS.filter(bool))) for n in names]


@st.composite
def options(draw):
    return join.JoinOptions(
        as_of=AS_OF,
        grace_hours=draw(st.sampled_from([0.0, 24.0, 72.5])),
        templates=tuple(
            draw(st.lists(st.sampled_from(["1.2.3.4", "INTUNE-SCEP", "ünï"]), max_size=2))
            if draw(st.integers(0, 3)) == 0
            else ()
        ),
        device_pattern=draw(st.sampled_from([None, re.compile(r"CN=([^,]+)")])),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    certs=st.lists(ca_certs(), max_size=12),
    records=st.lists(intune_certs(), max_size=12),
    known=devices(),
    chosen=options(),
    keep_all=st.booleans(),
)
def test_engine_gives_the_verdicts_of_the_python_join(certs, records, known, chosen, keep_all):
    side = IntuneSide.from_records(records, known)
    expected = join.classify(certs, side, chosen, keep_all=keep_all)
    got = engine.classify(
        certs,
        side,
        engine.JoinOptions(
            chosen.as_of, chosen.grace_hours, chosen.templates, chosen.device_pattern
        ),
        keep_all=keep_all,
    )
    assert [(v.status, v.reason) for v in got.verdicts] == [
        (v.status, v.reason) for v in expected.verdicts
    ]
    assert got.verdicts == expected.verdicts
    assert got.unknown_to_ca == expected.unknown_to_ca
    assert got.dropped == expected.dropped
