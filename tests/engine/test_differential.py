"""The engine's join against the Python join it replaced (tests/engine/reference_join.py), on
random inputs: every verdict field, unknown_to_ca, the counts and the deferred records."""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile import join
from reconcile.intune.side import Devices, IntuneSide, entry_of
from reconcile.model import IntuneSource, Status
from tests.engine import reference_join
from tests.factories import AS_OF, ca_cert, device, intune_cert
from tests.helpers import examples

SERIALS = st.sampled_from([0, 1, 0xAB, 0x1000, 0x1000, 2**64 + 5, 2**159 + 1])
THUMBPRINTS = st.sampled_from([None, None, "AB" * 20, "CD" * 20, "EF" * 32, ""])
ISSUERS = st.sampled_from(
    [
        None,
        "",
        " ",
        "Contoso Issuing CA",
        "CN=Contoso Issuing CA, DC=corp",
        "contoso   issuing CA",
        "Fabrikam CA",
        "/O=Fabrikam/CN=Fabrikam CA",
        "Ünï CA",
        "CN=ÜNÏ CA",
    ]
)
NAMES = st.sampled_from(
    [
        None,
        "",
        " ",
        "PC-01",
        "pc-01",
        " PC-01\t",
        "\x1cPC-01",
        "PC-01.corp.contoso.com",
        "pc-01.corp.",
        "PC-02",
        "10.0.0.1",
        "host.123",
        "megan@contoso.com",
        "Straße",
        "STRASSE",
        "straße.corp.example",
        "ÄPC",
        "äpc",
        "PC-01\u00a0",
        "İstanbul",
    ]
)
TEMPLATES = st.sampled_from([None, "", "1.2.3.4", "1.2.3.4", "1.2.3.5"])
TEMPLATE_NAMES = st.sampled_from([None, "", "Intune-SCEP", "intune-scep", "WebServer", "Ünï", "ß"])
PROFILES = st.sampled_from([None, "", "profile-1", "1.2.3.4", "1.2.3.4", "1.2.3.5"])
STATES = st.sampled_from(["installed", "installed", "installFailed", "issued", "someFutureState"])
DEVICE_IDS = st.sampled_from([None, None, None, "", "dev-PC-01", "dev-x", "dev-PC-02"])
DAYS = (-400, -30, -12, -11, -10, -9, -5, -3, -2, -1, 0, 1, 8, 29, 30, 31, 365)


@st.composite
def times(draw, low=-400, high=365, none=7):
    if draw(st.integers(0, none)) == 0:
        return None
    days = draw(st.sampled_from([d for d in DAYS if low <= d <= high]))
    minutes = draw(st.sampled_from([0, 0, 1, 5, 59, 60 * 12, -3]))
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
        subject=draw(st.sampled_from([None, f"CN={cn}", "CN=PC-02, O=x", "O=x"])),
        san=draw(st.sampled_from([None, "DNS=PC-01.corp", "", "DNS=straße"])),
        template_oid=draw(TEMPLATES),
        template_name=draw(TEMPLATE_NAMES),
        not_before=draw(times(high=1)),
        not_after=draw(times(low=-2)),
        revoked_at=draw(times()) if draw(st.integers(0, 5)) == 0 else None,
        line=draw(st.integers(min_value=1, max_value=4)),
        out_of_scope=draw(st.sampled_from([None] * 8 + ["a CA certificate", ""])),
        managed_device_id=draw(st.sampled_from([None] * 6 + ["dev-PC-01", "dev-x", ""])),
    )


@st.composite
def intune_certs(draw):
    state = draw(STATES)
    return intune_cert(
        serial=draw(st.one_of(st.none(), SERIALS)),
        state=state,
        source=draw(st.sampled_from(list(IntuneSource))),
        thumbprint=draw(THUMBPRINTS),
        issuer=draw(ISSUERS),
        device_name=draw(NAMES),
        device_id=draw(DEVICE_IDS),
        profile_id=draw(PROFILES),
        profile_name=draw(TEMPLATE_NAMES),
        issued_at=draw(times(high=1, none=4)),
        state_changed_at=draw(times(none=3)),
    )


@st.composite
def chain(draw):
    """Renewals of one device's certificate (same device and template, later not_before), some
    delivered: what superseded is about."""
    name = draw(st.sampled_from(["PC-01", "pc-01.corp.contoso.com", "Straße", "PC-02"]))
    starts = draw(st.lists(st.sampled_from([-300, -200, -100, -30, -12, -2]), max_size=4))
    certs, records = [], []
    for n, days in enumerate(starts):
        serial = 0x2000 + n
        issued = AS_OF + timedelta(days=days, microseconds=n)
        certs.append(
            ca_cert(
                serial=serial,
                common_name=draw(st.sampled_from([name, name.upper(), None])),
                subject=f"CN={name}",
                template_oid=draw(st.sampled_from(["1.2.3.4", None])),
                template_name=draw(st.sampled_from(["Intune-SCEP", "ß", None])),
                not_before=draw(st.sampled_from([issued, issued, None])),
                managed_device_id=draw(st.sampled_from([None, None, "dev-PC-01"])),
            )
        )
        if draw(st.integers(0, 3)):
            records.append(
                intune_cert(
                    serial=serial,
                    state=draw(STATES),
                    device_name=draw(st.sampled_from([name, None, "PC-01"])),
                    device_id=draw(DEVICE_IDS),
                    profile_id=draw(st.sampled_from(["1.2.3.4", "profile-1", None])),
                    profile_name=draw(st.sampled_from(["intune-scep", "SS", None])),
                    issued_at=draw(st.sampled_from([issued, None, issued + timedelta(days=1)])),
                )
            )
    return certs, records


@st.composite
def inputs(draw):
    """CA certificates and an Intune side: records in one collection or spread over two, lines
    with gaps (rejected lines leave them), devices absent, present or sharing names."""
    certs = draw(st.lists(ca_certs(), max_size=14))
    records = draw(st.lists(intune_certs(), max_size=14))
    for _ in range(draw(st.integers(0, 2))):
        more_certs, more_records = draw(chain())
        certs += more_certs
        records += more_records
    certs = draw(st.permutations(certs))
    records = draw(st.permutations(records))
    return certs, draw(sides(records))


@st.composite
def sides(draw, records):
    known = None
    if draw(st.integers(0, 3)):
        names = draw(st.lists(NAMES, max_size=5))
        ids = DEVICE_IDS.filter(bool)
        known = Devices.from_records([device("x", device_name=n, id=draw(ids)) for n in names])
    if draw(st.booleans()):
        return IntuneSide.from_records(records, None) if known is None else _with(records, known)
    entries = []
    where = {}
    line = {0: 0, 1: 0}
    for record in records:
        collection = 0 if record.source is IntuneSource.STATES else 1
        line[collection] += draw(st.sampled_from([1, 1, 2]))
        entry = entry_of(record, collection, line[collection])
        entries.append(entry)
        where[(collection, line[collection])] = record
    entries.sort(key=lambda e: (e.collection, e.where))
    return IntuneSide(entries, lambda e: where[(e.collection, e.where)], known)


def _with(records, known):
    side = IntuneSide.from_records(records)
    return IntuneSide(side.entries, side.certificate, known)


PATTERNS = [
    None,
    None,
    re.compile(r"CN=([^,]+)"),
    re.compile(r"DNS=([^,]+)"),
    re.compile("CN=(PC)?"),
]


@st.composite
def options(draw):
    return join.JoinOptions(
        as_of=AS_OF,
        grace_hours=draw(st.sampled_from([0.0, 24.0, 72.5])),
        templates=tuple(
            draw(st.lists(st.sampled_from(["1.2.3.4", "INTUNE-SCEP", "ünï", "SS"]), max_size=2))
            if draw(st.integers(0, 3)) == 0
            else ()
        ),
        device_pattern=draw(st.sampled_from(PATTERNS)),
        revoked_by=draw(
            st.sampled_from([None, AS_OF, AS_OF + timedelta(minutes=5), AS_OF + timedelta(days=1)])
        ),
    )


VIEWS = join.ViewKeep(AS_OF, AS_OF + timedelta(days=30))


def _revoked_delivered(status, cert, delivered):
    return delivered and status is Status.REVOKED


def _has_device(verdict):
    return verdict.device is not None or bool(verdict.device_candidates)


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    given_inputs=inputs(),
    chosen=options(),
    keep_all=st.booleans(),
    keep_cert=st.sampled_from([None, VIEWS, VIEWS, _revoked_delivered]),
    keep_if=st.sampled_from([None, None, _has_device]),
    defer=st.booleans(),
)
def test_engine_gives_the_verdicts_of_the_python_join(
    given_inputs, chosen, keep_all, keep_cert, keep_if, defer
):
    certs, side = given_inputs
    kwargs = {"keep_all": keep_all, "keep_if": keep_if, "keep_cert": keep_cert}
    expected = reference_join.classify(certs, side, chosen, defer_records=defer, **kwargs)
    got = join.classify(certs, side, chosen, defer_records=defer, **kwargs)

    assert [(v.ca.serial, v.status, v.reason) for v in got.verdicts] == [
        (v.ca.serial, v.status, v.reason) for v in expected.verdicts
    ]
    assert got.verdicts == expected.verdicts
    assert got.unknown_to_ca == expected.unknown_to_ca
    assert got.dropped == expected.dropped
    assert (got.deferred is None) == (expected.deferred is None)
    if got.deferred is not None and expected.deferred is not None:
        assert tuple(got.deferred.view_only()) == tuple(
            v.light() for v in expected.deferred.view_only()
        )
        assert got.deferred.unknown_to_ca() == expected.deferred.unknown_to_ca()
