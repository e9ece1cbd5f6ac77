"""The views' rules, through the real join: what belongs in revoked-installed, expiring and
the revocation plan, and what never does."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import replace
from datetime import timedelta

import pytest

from reconcile.intune.side import IntuneSide
from reconcile.join import JoinOptions, classify
from reconcile.model import (
    CaCertificate,
    InputFile,
    IntuneCertificate,
    ManagedDevice,
    Status,
    Verdict,
)
from reconcile.report.viewsout import VIEW_COLUMNS, write_view
from reconcile.report.viewspage import _cells
from reconcile.views import (
    PlanTarget,
    RevocationReason,
    View,
    ViewOptions,
    build,
    revoke_command,
    wanted,
)
from tests.factories import AS_OF, ca_cert, device, intune_cert
from tests.helpers import engine_of

OPTIONS = ViewOptions(as_of=AS_OF, expiry_days=30)


def views_of(certs, records=(), devices=None, options=OPTIONS, ca_format="certutil"):
    """Join without keep_all, as a default run does, and build the views."""
    side = IntuneSide.from_records(list(records), devices)
    joined = classify(
        certs, side, JoinOptions(as_of=options.as_of), keep_all=False, keep_cert=wanted(options)
    )
    inputs = [InputFile("ca.csv", "ca-export", ca_format, "0" * 64, len(certs), 0)]
    with engine_of(side) as db:
        return build(joined.verdicts, db, inputs, options)


def serials(rows):
    return [r.verdict.ca.serial for r in rows]


# --- revoked but installed -------------------------------------------------------------------


def test_revoked_certificate_intune_still_reports_installed_is_listed():
    cert = ca_cert(0xA1, revoked_at=AS_OF - timedelta(days=2))
    views = views_of([cert], [intune_cert(0xA1)])
    assert serials(views.revoked_installed) == [0xA1]
    row = views.revoked_installed[0]
    assert row.verdict.status is Status.REVOKED
    assert "CRL" in row.next_step and "retire/wipe" in row.next_step


def test_revoked_certificate_intune_no_longer_lists_is_not_listed():
    cert = ca_cert(0xA2, revoked_at=AS_OF - timedelta(days=2))
    assert views_of([cert], []).revoked_installed == ()


def test_revoked_certificate_intune_reports_failed_or_revoked_is_not_listed():
    cert = ca_cert(0xA3, revoked_at=AS_OF - timedelta(days=2))
    assert views_of([cert], [intune_cert(0xA3, state="revoked")]).revoked_installed == ()


def test_revocation_after_as_of_does_not_count_yet():
    cert = ca_cert(0xA4, revoked_at=AS_OF + timedelta(hours=1))
    assert views_of([cert], [intune_cert(0xA4)]).revoked_installed == ()


def test_a_delivered_report_status_counts_as_installed():
    from reconcile.model import IntuneSource

    cert = ca_cert(0xA5, revoked_at=AS_OF - timedelta(days=1))
    row = intune_cert(0xA5, state="Issued", delivered=True, source=IntuneSource.REPORT)
    assert serials(views_of([cert], [row]).revoked_installed) == [0xA5]


# --- expiring ---------------------------------------------------------------------------------


def test_installed_certificate_expiring_within_the_window_is_listed_with_days_left():
    cert = ca_cert(0xB1, not_after=AS_OF + timedelta(days=12, hours=5))
    views = views_of([cert], [intune_cert(0xB1)])
    assert serials(views.expiring) == [0xB1]
    assert views.expiring[0].days_left == 12
    assert "Certificate Connector" in views.expiring[0].next_step


def test_expiring_outside_the_window_or_already_expired_is_not_listed():
    later = ca_cert(0xB2, not_after=AS_OF + timedelta(days=31))
    gone = ca_cert(0xB3, not_after=AS_OF - timedelta(days=1))
    views = views_of([later, gone], [intune_cert(0xB2), intune_cert(0xB3)])
    assert views.expiring == ()
    wider = ViewOptions(as_of=AS_OF, expiry_days=40)
    assert serials(views_of([later], [intune_cert(0xB2)], options=wider).expiring) == [0xB2]


def test_a_delivered_renewal_removes_a_certificate_from_expiring():
    old = ca_cert(0xB4, not_before=AS_OF - timedelta(days=340), not_after=AS_OF + timedelta(days=5))
    new = ca_cert(0xB5, not_before=AS_OF - timedelta(days=2), not_after=AS_OF + timedelta(days=363))
    old_record = intune_cert(0xB4, issued_at=AS_OF - timedelta(days=340))
    new_record = intune_cert(0xB5, issued_at=AS_OF - timedelta(days=2))
    assert serials(views_of([old], [old_record]).expiring) == [0xB4]
    assert views_of([old, new], [old_record, new_record]).expiring == ()


def test_a_renewal_that_failed_does_not_remove_it():
    old = ca_cert(0xB6, not_before=AS_OF - timedelta(days=340), not_after=AS_OF + timedelta(days=5))
    new = ca_cert(0xB7, not_before=AS_OF - timedelta(days=2))
    records = [
        intune_cert(0xB6, issued_at=AS_OF - timedelta(days=340)),
        intune_cert(0xB7, state="installFailed", issued_at=AS_OF - timedelta(days=2)),
    ]
    assert serials(views_of([old, new], records).expiring) == [0xB6]


def test_a_revoked_certificate_is_never_expiring():
    cert = ca_cert(0xB8, not_after=AS_OF + timedelta(days=3), revoked_at=AS_OF - timedelta(days=1))
    views = views_of([cert], [intune_cert(0xB8)])
    assert views.expiring == () and serials(views.revoked_installed) == [0xB8]


# --- revocation plan --------------------------------------------------------------------------


def test_superseded_finding_is_in_the_plan_with_code_4():
    old = ca_cert(0xC1, not_before=AS_OF - timedelta(days=30))
    new = ca_cert(0xC2, not_before=AS_OF - timedelta(days=3))
    records = [intune_cert(0xC1, state="installFailed"), intune_cert(0xC2)]
    plan = views_of([old, new], records).revocation_plan
    assert serials(plan) == [0xC1]
    assert plan[0].reason is RevocationReason.SUPERSEDED
    assert plan[0].command.startswith("certutil -revoke C1 4")


def test_a_gone_devices_finding_is_in_the_plan_with_code_5():
    cert = ca_cert(0xC3)
    plan = views_of(
        [cert], [intune_cert(0xC3, state="installFailed")], devices=[device("PC-99")]
    ).revocation_plan
    assert serials(plan) == [0xC3]
    assert plan[0].reason is RevocationReason.CESSATION_OF_OPERATION
    assert plan[0].verdict.device_gone


def test_a_finding_on_a_present_device_is_not_in_the_plan():
    cert = ca_cert(0xC4)
    views = views_of([cert], [intune_cert(0xC4, state="installFailed")], devices=[device("PC-01")])
    assert views.revocation_plan == ()


def test_a_delivered_certificate_is_never_in_the_plan():
    """Even on a device that is gone from Intune, and even when it is expiring."""
    cert = ca_cert(0xC5, not_after=AS_OF + timedelta(days=3))
    views = views_of([cert], [intune_cert(0xC5)], devices=[device("PC-99")])
    assert views.revocation_plan == ()
    assert serials(views.expiring) == [0xC5]
    older = ca_cert(0xC6, not_before=AS_OF - timedelta(days=30))
    both = views_of(
        [older, cert], [intune_cert(0xC6), intune_cert(0xC5)], devices=[device("PC-99")]
    )
    assert all(r.verdict.status is not Status.DELIVERED for r in both.revocation_plan)
    assert 0xC5 not in serials(both.revocation_plan)


def test_views_count_and_name_the_certificate():
    cert = ca_cert(0xA1, revoked_at=AS_OF - timedelta(days=2))
    views = views_of([cert], [intune_cert(0xA1)])
    assert views.counts() == {"revoked_installed": 1, "expiring": 0, "revocation_plan": 0}
    assert views.views_of(0xA1, cert.issuer) == (View.REVOKED_INSTALLED,)


# --- commands ---------------------------------------------------------------------------------


def target(reason=RevocationReason.SUPERSEDED, **changes):
    values = {
        "serial": 0x1A2B,
        "issuer": "CN=Contoso Issuing CA,O=Contoso",
        "reason": reason,
        "export_path": "/srv/ca/index.txt",
        "ca_config": None,
    }
    return PlanTarget(**{**values, **changes})


@pytest.mark.parametrize("ca_format", ["certutil", "certutil-text", "pspki"])
def test_ad_cs_command_with_and_without_ca_config(ca_format):
    known = target(ca_config="ca01.contoso.com\\Contoso Issuing CA")
    assert revoke_command(ca_format, known) == (
        'certutil -config "ca01.contoso.com\\Contoso Issuing CA" -revoke 1A2B 4'
    )
    unknown = revoke_command(ca_format, target(RevocationReason.CESSATION_OF_OPERATION))
    assert unknown.startswith("certutil -revoke 1A2B 5  # CA config unknown")
    assert "-config " not in unknown.partition("#")[0]


def test_openssl_command_names_the_newcerts_file_and_reason():
    assert revoke_command("openssl-index", target()) == (
        'openssl ca -revoke "/srv/ca/newcerts/1A2B.pem" -crl_reason superseded'
    )
    gone = revoke_command("openssl-index", target(RevocationReason.CESSATION_OF_OPERATION))
    assert gone.endswith("-crl_reason cessationOfOperation")


def test_ejbca_command_names_issuer_dn_serial_and_code():
    assert revoke_command("ejbca", target(RevocationReason.CESSATION_OF_OPERATION)) == (
        'ejbca.sh ra revokecert --dn "CN=Contoso Issuing CA,O=Contoso" -s 1A2B -r 5'
    )


def test_a_hostile_issuer_cannot_expand_inside_the_quotes():
    command = revoke_command("ejbca", target(issuer='CN=x"; $(rm -rf /) `id`'))
    assert "$(" not in command and "`" not in command and command.count('"') == 2


def test_an_unknown_ca_kind_gets_a_comment_not_a_command():
    assert revoke_command("mapped", target()).startswith("# no revocation command known")


def test_intunes_own_later_clock_is_not_a_renewal():
    """Intune's issuance time of the same certificate is often minutes after the CA's."""
    cert = ca_cert(
        0xB9, not_before=AS_OF - timedelta(days=300), not_after=AS_OF + timedelta(days=9)
    )
    record = intune_cert(0xB9, issued_at=AS_OF - timedelta(days=300) + timedelta(minutes=5))
    assert serials(views_of([cert], [record]).expiring) == [0xB9]
    by_thumbprint = replace(record, serial=None, thumbprint="AB" * 20)
    cert_t = replace(cert, thumbprint="AB" * 20)
    assert serials(views_of([cert_t], [by_thumbprint]).expiring) == [0xB9]


def test_deferred_records_are_the_same_ones_read_after_the_join():
    """A default run reads view-only verdicts and unknown_to_ca after the join: same ones."""
    revoked = ca_cert(0xA1, revoked_at=AS_OF - timedelta(days=2))
    expiring = ca_cert(0xB1, not_after=AS_OF + timedelta(days=8))
    finding = ca_cert(0xC1)
    quiet = ca_cert(0xD1)
    certs = [revoked, expiring, finding, quiet]
    records = [intune_cert(0xA1), intune_cert(0xB1), intune_cert(0xC1, "installFailed")]
    records += [intune_cert(0xD1), intune_cert(0xE1)]
    side = IntuneSide.from_records(records)
    at_once = classify(
        certs, side, JoinOptions(as_of=AS_OF), keep_all=False, keep_cert=wanted(OPTIONS)
    )
    deferred = classify(
        certs,
        side,
        JoinOptions(as_of=AS_OF),
        keep_all=False,
        keep_cert=wanted(OPTIONS),
        defer_records=True,
    )

    assert at_once.deferred is None
    assert [v.ca.serial for v in at_once.verdicts] == [0xA1, 0xB1, 0xC1]
    assert [v.ca.serial for v in deferred.verdicts] == [0xC1]
    assert deferred.deferred is not None
    assert tuple(deferred.deferred.view_only()) == (
        at_once.verdicts[0].light(),
        at_once.verdicts[1].light(),
    )
    assert deferred.dropped == at_once.dropped == {"delivered": 1}
    assert [r.serial for r in at_once.unknown_to_ca] == [0xE1]
    assert deferred.unknown_to_ca == ()
    assert deferred.deferred.unknown_to_ca() == at_once.unknown_to_ca


def test_light_verdicts_give_the_same_views_byte_for_byte():
    """The pipeline keeps view-only certificates as ``light`` verdicts: every view, its file and
    its page cells come out the same, renewals included."""
    old = ca_cert(0xB4, not_before=AS_OF - timedelta(days=340), not_after=AS_OF + timedelta(days=5))
    new = ca_cert(0xB5, not_before=AS_OF - timedelta(days=2), not_after=AS_OF + timedelta(days=363))
    lone = ca_cert(0xB1, not_after=AS_OF + timedelta(days=8))
    revoked = ca_cert(0xA1, revoked_at=AS_OF - timedelta(days=2))
    certs = [old, new, lone, revoked, ca_cert(0xC1)]
    records = [
        intune_cert(0xB4, issued_at=AS_OF - timedelta(days=340)),
        intune_cert(0xB5, issued_at=AS_OF - timedelta(days=2)),
        intune_cert(0xB1, device_name="PC-02", user=None),
        intune_cert(0xA1),
        intune_cert(0xC1, "installFailed"),
    ]
    side = IntuneSide.from_records(records, [device(), device("PC-02")])
    joined = classify(
        certs, side, JoinOptions(as_of=AS_OF), keep_all=False, keep_cert=wanted(OPTIONS)
    )
    inputs = [InputFile("ca.csv", "ca-export", "certutil", "0" * 64, len(certs), 0)]
    slim = [v if v.is_finding else v.light() for v in joined.verdicts]
    with engine_of(side) as db:
        full_views = build(joined.verdicts, db, inputs, OPTIONS)
        light_views = build(slim, db, inputs, OPTIONS)

    assert serials(light_views.expiring) == [0xB1]
    assert serials(light_views.revoked_installed) == [0xA1]
    for view in View:
        full_rows, light_rows = full_views.rows(view), light_views.rows(view)
        full_file, light_file = io.StringIO(), io.StringIO()
        write_view(full_file, view, full_rows, "run")
        write_view(light_file, view, light_rows, "run")
        assert light_file.getvalue() == full_file.getvalue()
        names = [n for n, _ in VIEW_COLUMNS[view]]
        assert [_cells(view, r, names) for r in light_rows] == [
            _cells(view, r, names) for r in full_rows
        ]
    kept = light_views.revoked_installed[0].verdict
    assert kept.reason == "" and kept.ca.subject is None
    assert kept.intune is not None and kept.intune.record_id == "" and kept.intune.serial is None
    full = full_views.revoked_installed[0].verdict.device
    assert full is not None and full.operating_system and full.last_sync
    assert kept.device == replace(full, operating_system=None, last_sync=None)


LIGHT_DROPS = {
    CaCertificate: {"subject", "requester", "template_name", "request_id", "san"},
    IntuneCertificate: {
        "record_id",
        "serial",
        "thumbprint",
        "issuer",
        "platform",
        "expires_at",
        "state_changed_at",
        "error_code",
        "subject",
    },
    ManagedDevice: {"azure_ad_device_id", "serial_number", "operating_system", "last_sync"},
    Verdict: {"reason"},
}
"""What a light verdict leaves out; a field added to a record is kept unless it is named here."""


def _filled(cls, nested):
    """An instance with every field set to a value of its own (records from ``nested``)."""
    values = {}
    for number, f in enumerate(dataclasses.fields(cls)):
        if f.name in nested:
            values[f.name] = nested[f.name]
        elif f.name == "source" and cls is IntuneCertificate:
            values[f.name] = intune_cert(1).source
        elif f.name == "status":
            values[f.name] = Status.DELIVERED
        elif "bool" in str(f.type):
            values[f.name] = True
        elif "datetime" in str(f.type):
            values[f.name] = AS_OF + timedelta(minutes=number)
        elif f.type in ("int", "int | None"):
            values[f.name] = number + 1
        elif "tuple" in str(f.type):
            values[f.name] = (device("PC-X"),)
        else:
            values[f.name] = f"{cls.__name__}.{f.name}"
    return cls(**values)


def test_light_keeps_every_field_it_does_not_name():
    ca = _filled(CaCertificate, {})
    record = _filled(IntuneCertificate, {})
    managed = _filled(ManagedDevice, {})
    full = _filled(Verdict, {"ca": ca, "intune": record, "device": managed})
    slim = full.light()
    for original, kept in (
        (full, slim),
        (ca, slim.ca),
        (record, slim.intune),
        (managed, slim.device),
    ):
        dropped = LIGHT_DROPS[type(original)]
        for f in dataclasses.fields(original):
            value, left = getattr(original, f.name), getattr(kept, f.name)
            if f.name in dropped:
                assert left in (None, ""), f"{type(original).__name__}.{f.name}"
            elif f.name not in ("ca", "intune", "device"):
                assert left == value, f"{type(original).__name__}.{f.name}"
