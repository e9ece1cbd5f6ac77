from __future__ import annotations

import re
from datetime import timedelta

import pytest

from reconcile.intune.side import IntuneSide
from reconcile.join import JoinOptions, classify
from reconcile.model import IntuneSource, Status
from tests.factories import AS_OF, ca_cert, device, intune_cert

OPTIONS = JoinOptions(as_of=AS_OF)


def join(certs, records=(), devices=None, options=OPTIONS, **kwargs):
    return classify(certs, IntuneSide.from_records(list(records), devices), options, **kwargs)


def status_of(cert, intune=(), devices=None, options=OPTIONS):
    result = join([cert], intune, devices, options)
    assert len(result.verdicts) == 1
    return result.verdicts[0]


@pytest.mark.parametrize(
    ("cert_changes", "intune", "expected"),
    [
        ({}, [intune_cert()], Status.DELIVERED),
        ({}, [intune_cert(state="installFailed")], Status.NOT_INSTALLED),
        ({}, [intune_cert(state="someFutureState")], Status.NOT_INSTALLED),
        ({}, [intune_cert(state="issued")], Status.NOT_INSTALLED),
        ({}, [], Status.NOT_REPORTED),
        ({"revoked_at": AS_OF - timedelta(days=1)}, [intune_cert()], Status.REVOKED),
        ({"not_after": AS_OF - timedelta(seconds=1)}, [], Status.EXPIRED),
        ({"not_before": AS_OF - timedelta(hours=2)}, [], Status.WITHIN_GRACE),
        ({"not_before": AS_OF - timedelta(hours=2)}, [intune_cert()], Status.DELIVERED),
        ({"not_before": AS_OF - timedelta(hours=25)}, [], Status.NOT_REPORTED),
    ],
)
def test_status_table(cert_changes, intune, expected):
    assert status_of(ca_cert(**cert_changes), intune).status is expected


def test_out_of_scope_comes_first_and_matches_name_or_oid():
    options = JoinOptions(as_of=AS_OF, templates=("intune-scep",))
    assert status_of(ca_cert(), options=options).status is Status.NOT_REPORTED
    other = ca_cert(template_name="WebServer", template_oid=None)
    assert status_of(other, options=options).status is Status.OUT_OF_SCOPE
    by_oid = JoinOptions(as_of=AS_OF, templates=("1.3.6.1.4.1.311.21.8.1.2",))
    assert status_of(ca_cert(template_name=None), options=by_oid).status is Status.NOT_REPORTED


def test_serial_spellings_meet_as_integers():
    assert status_of(ca_cert(serial=0x00AB), [intune_cert(serial=0xAB)]).status is Status.DELIVERED


def test_issuer_aware_matching_refuses_another_ca():
    other_ca = intune_cert(issuer="CN=Fabrikam Root")
    verdict = status_of(ca_cert(), [other_ca])
    assert verdict.status is Status.NOT_REPORTED


def test_unknown_issuer_on_either_side_still_matches():
    assert status_of(ca_cert(issuer=None), [intune_cert()]).status is Status.DELIVERED
    assert status_of(ca_cert(), [intune_cert(issuer=None)]).status is Status.DELIVERED


def test_thumbprint_matches_when_intune_has_no_serial():
    thumb = "AB" * 20
    record = intune_cert(serial=None, thumbprint=thumb)
    assert status_of(ca_cert(thumbprint=thumb), [record]).status is Status.DELIVERED
    assert status_of(ca_cert(thumbprint="CD" * 20), [record]).status is Status.NOT_REPORTED


def test_delivered_record_wins_over_failed_duplicate():
    records = [intune_cert(state="installFailed"), intune_cert(source=IntuneSource.REPORT)]
    verdict = status_of(ca_cert(), records)
    assert verdict.status is Status.DELIVERED
    assert verdict.intune is records[1]


def test_superseded_by_newer_delivered_renewal_via_intune_link():
    old = ca_cert(serial=1, not_before=AS_OF - timedelta(days=30))
    new = ca_cert(serial=2, not_before=AS_OF - timedelta(days=5))
    records = [intune_cert(serial=1, state="installFailed"), intune_cert(serial=2)]
    result = join([old, new], records, None, OPTIONS)
    assert [v.status for v in result.verdicts] == [Status.SUPERSEDED, Status.DELIVERED]
    assert "newer certificate" in result.verdicts[0].reason


def test_superseded_via_ca_subject_when_intune_never_saw_the_old_one():
    old = ca_cert(serial=1, not_before=AS_OF - timedelta(days=30))
    new = ca_cert(serial=2, not_before=AS_OF - timedelta(days=5))
    result = join([old, new], [intune_cert(serial=2)], None, OPTIONS)
    assert [v.status for v in result.verdicts] == [Status.SUPERSEDED, Status.DELIVERED]


def test_an_older_delivered_certificate_does_not_supersede_a_newer_failure():
    old = ca_cert(serial=1, not_before=AS_OF - timedelta(days=30))
    new = ca_cert(serial=2, not_before=AS_OF - timedelta(days=5))
    records = [intune_cert(serial=1), intune_cert(serial=2, state="installFailed")]
    result = join([old, new], records, None, OPTIONS)
    assert [v.status for v in result.verdicts] == [Status.DELIVERED, Status.NOT_INSTALLED]


def test_device_pattern_links_renewals_through_the_subject():
    pattern = re.compile(r"OU=(\w+)")
    options = JoinOptions(as_of=AS_OF, device_pattern=pattern)
    old = ca_cert(
        serial=1, subject="CN=a,OU=dev7", common_name="a", not_before=AS_OF - timedelta(days=30)
    )
    new = ca_cert(serial=2, subject="CN=b,OU=dev7", common_name="b")
    result = join([old, new], [intune_cert(serial=2)], None, options)
    assert result.verdicts[0].status is Status.SUPERSEDED


def test_device_gone_from_intune_is_flagged():
    verdict = status_of(ca_cert(), [intune_cert(state="installFailed")], devices=[device("PC-99")])
    assert verdict.device_gone is True
    present = status_of(ca_cert(), [intune_cert(state="installFailed")], devices=[device("pc-01")])
    assert present.device_gone is False
    assert present.device is not None and present.device.id == "dev-pc-01"
    unknown = status_of(ca_cert(), [intune_cert(state="installFailed")], devices=None)
    assert unknown.device_gone is False


def test_unknown_to_ca_lists_intune_serials_the_export_lacks_once():
    records = [
        intune_cert(serial=0x1000),
        intune_cert(serial=0x2000),
        intune_cert(serial=0x2000, source=IntuneSource.REPORT),
        intune_cert(serial=0x3000, issuer="CN=Fabrikam Root"),
    ]
    result = join([ca_cert(serial=0x1000)], records, None, OPTIONS)
    assert [r.serial for r in result.unknown_to_ca] == [0x2000]


def test_unknown_to_ca_counts_every_issuer_when_the_export_names_none():
    records = [intune_cert(serial=0x3000, issuer="CN=Fabrikam Root")]
    result = join([ca_cert(issuer=None)], records, None, OPTIONS)
    assert [r.serial for r in result.unknown_to_ca] == [0x3000]


def test_every_certificate_gets_exactly_one_verdict_in_input_order():
    certs = [ca_cert(serial=n, line=n) for n in range(1, 50)]
    result = join(certs, [intune_cert(serial=n) for n in range(1, 50, 3)], None, OPTIONS)
    assert [v.ca.line for v in result.verdicts] == list(range(1, 50))


def test_certificate_without_record_on_a_retired_device_is_flagged_gone():
    others = [intune_cert(serial=0x77, device_name="PC-01", state="installFailed")]
    verdict = status_of(ca_cert(), others, devices=[device("PC-02")])
    assert verdict.status is Status.NOT_REPORTED
    assert verdict.device_gone is True
    never_seen = status_of(
        ca_cert(common_name="alex@contoso.com"), others, devices=[device("PC-02")]
    )
    assert never_seen.device_gone is False and never_seen.device is None
    present = status_of(ca_cert(), [], devices=[device("PC-01")])
    assert present.device is not None and present.device_gone is False


def test_without_keep_all_only_findings_are_built_and_the_rest_counted():
    certs = [
        ca_cert(serial=1),
        ca_cert(serial=2),
        ca_cert(serial=3, revoked_at=AS_OF),
        ca_cert(serial=4, line=9),
    ]
    records = [intune_cert(serial=1), intune_cert(serial=2, state="installFailed", device_name="X")]
    result = join(certs, records, None, OPTIONS, keep_all=False)
    assert [(v.ca.serial, v.status) for v in result.verdicts] == [
        (2, Status.NOT_INSTALLED),
        (4, Status.NOT_REPORTED),
    ]
    assert result.dropped == {"delivered": 1, "revoked": 1}


def test_keep_if_keeps_chosen_non_findings_without_keep_all():
    certs = [ca_cert(serial=1), ca_cert(serial=2, common_name="PC-02")]
    records = [intune_cert(serial=1), intune_cert(serial=2, device_name="PC-02")]
    result = join(
        certs,
        records,
        None,
        OPTIONS,
        keep_all=False,
        keep_if=lambda v: v.ca.common_name == "PC-02",
    )
    assert [v.ca.serial for v in result.verdicts] == [2]
    assert result.dropped == {"delivered": 1}


def test_a_cn_with_a_dns_suffix_is_the_same_device_as_intunes_short_name():
    """CONTOSO-LT-0099 in Intune, contoso-lt-0099.corp.contoso.com in the CA: one device, so
    a certificate without a record on a retired device is still a revocation candidate."""
    fqdn = ca_cert(common_name="contoso-lt-0099.corp.contoso.com")
    retired = [intune_cert(serial=0x77, device_name="CONTOSO-LT-0099", state="installFailed")]
    gone = status_of(fqdn, retired, devices=[device("PC-02")])
    assert gone.status is Status.NOT_REPORTED and gone.device_gone is True
    present = status_of(fqdn, [], devices=[device("CONTOSO-LT-0099")])
    assert present.device is not None and present.device.id == "dev-CONTOSO-LT-0099"


def test_a_renewal_named_by_fqdn_supersedes_the_certificate_named_by_host():
    old = ca_cert(serial=1, common_name="PC-01", not_before=AS_OF - timedelta(days=30))
    new = ca_cert(serial=2, common_name="pc-01.corp.contoso.com")
    result = join([old, new], [intune_cert(serial=2, device_name=None)], None, OPTIONS)
    assert result.verdicts[0].status is Status.SUPERSEDED


def test_two_users_with_the_same_first_name_are_not_one_device():
    old = ca_cert(
        serial=1, common_name="megan.bowen@contoso.com", not_before=AS_OF - timedelta(days=30)
    )
    other = ca_cert(serial=2, common_name="megan.smith@contoso.com")
    result = join([old, other], [intune_cert(serial=2, device_name=None)], None, OPTIONS)
    assert result.verdicts[0].status is Status.NOT_REPORTED
