"""The views' writers: formula-safe CSV like the findings, and a plan script that stays a
script for review whatever names the devices carry."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import timedelta

from reconcile.model import InputFile, Status
from reconcile.report import BundleInputs, bundle, viewsout, viewspage
from reconcile.report.bundle import OutputOptions
from reconcile.report.document import Report
from reconcile.views import View, ViewOptions, build
from tests.factories import AS_OF, ca_cert, device, intune_cert, result_with, verdict
from tests.helpers import engine_of

HOSTILE = '=HYPERLINK("http://evil.example","x")\n$(reboot)'


def gone_finding(serial: int, source: str, name: str = "PC-99"):
    return verdict(
        Status.NOT_INSTALLED,
        ca=ca_cert(serial, source=source, issuer="CN=Contoso Issuing CA,O=Contoso"),
        intune=intune_cert(serial, state="installFailed", device_name=name),
        device_gone=True,
    )


def views_for(*verdicts, formats=("openssl-index",)):
    inputs = [InputFile(f"/srv/{f}/index.txt", "ca-export", f, "0" * 64, 1, 0) for f in formats]
    with engine_of() as db:
        return build(verdicts, db, inputs, ViewOptions(as_of=AS_OF)), inputs


def test_view_csv_neutralises_hostile_names_and_keeps_the_header():
    revoked = verdict(
        Status.REVOKED,
        ca=ca_cert(0x51, revoked_at=AS_OF - timedelta(days=1)),
        intune=intune_cert(0x51, device_name=HOSTILE, user="@mallory"),
    )
    views, _ = views_for(revoked)
    out = io.StringIO()
    assert viewsout.write_view(out, View.REVOKED_INSTALLED, views.revoked_installed, "r1") == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["device_name"] == "'" + HOSTILE and row["user"] == "'@mallory"
    assert row["run_id"] == "r1" and row["serial_number"] == "51"
    empty = io.StringIO()
    assert viewsout.write_view(empty, View.EXPIRING, (), "r1") == 0
    assert empty.getvalue() == ",".join(viewsout.header(View.EXPIRING)) + "\r\n"


def test_openssl_plan_goes_into_a_shell_script_whose_comments_cannot_break_out():
    finding = gone_finding(0x77, "/srv/openssl-index/index.txt", HOSTILE)
    views, inputs = views_for(finding)
    assert viewsout.script_suffixes([i.format for i in inputs]) == ("sh",)
    out = io.StringIO()
    assert viewsout.write_script(out, views, "sh", "r1", "2026-11-20T02:00:00Z") == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "#!/bin/sh" and "set -eu" in lines
    assert "reconcile never revokes anything" in out.getvalue()
    commands = [line for line in lines if not line.startswith("#") and line != "set -eu"]
    assert commands == [
        'openssl ca -revoke "/srv/openssl-index/newcerts/77.pem" -crl_reason cessationOfOperation'
    ]
    assert all(line.startswith("#") for line in lines if "HYPERLINK" in line)


def test_each_script_holds_only_its_own_ca_kind():
    adcs = gone_finding(0x10, "/srv/certutil/index.txt")
    ejbca = gone_finding(0x20, "/srv/ejbca/index.txt")
    views, inputs = views_for(adcs, ejbca, formats=("certutil", "ejbca"))
    assert viewsout.script_suffixes([i.format for i in inputs]) == ("ps1", "sh")
    ps1, sh = io.StringIO(), io.StringIO()
    viewsout.write_script(ps1, views, "ps1", "r1", "t")
    viewsout.write_script(sh, views, "sh", "r1", "t")
    assert "certutil -revoke 10 5" in ps1.getvalue() and "ejbca.sh" not in ps1.getvalue()
    assert 'ejbca.sh ra revokecert --dn "CN=Contoso Issuing CA,O=Contoso" -s 20 -r 5' in (
        sh.getvalue()
    )
    assert "certutil" not in sh.getvalue()


def test_bundle_holds_every_view_file_even_when_empty(tmp_path):
    result = result_with(inputs=(InputFile("ca.csv", "ca-export", "pspki", "0" * 64, 0, 0),))
    views, _ = views_for()
    report = Report(replace(result, views=views))
    options = OutputOptions(bundle_inputs=BundleInputs.REFERENCE)
    out = bundle.write_bundle(tmp_path / "out", report, options, ["run"], 0)
    names = {p.name for p in out.iterdir()}
    assert {
        "revoked-installed.csv",
        "expiring.csv",
        "revocation-plan.csv",
        "revocation-plan.ps1",
    } <= names
    assert "revocation-plan.sh" not in names
    lines = (out / "revocation-plan.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 1  # the header alone


def test_terminal_text_shows_counts_rows_and_stale_connectors():
    from reconcile.intune.connectors import Connector, ConnectorHealth

    expiring = verdict(
        Status.DELIVERED,
        ca=ca_cert(0x61, not_after=AS_OF + timedelta(days=3)),
        intune=intune_cert(0x61, device_name="PC\x1b[31m-01"),
        device=device("PC-01"),
    )
    views, _ = views_for(expiring)
    silent = Connector("ndesConnector", "c1", "PKI-CONN-01", "pki01", "active", "6.2", None)
    views = replace(views, connectors=ConnectorHealth((silent,), AS_OF, 24.0))
    text = viewspage.text(replace(result_with(), views=views), 50)
    assert "within 30 days: 1" in text and "revoked" in text.lower()
    assert "\x1b" not in text and "PC\N{REPLACEMENT CHARACTER}-01" in text
    assert "PKI-CONN-01 on pki01" in text and "never connected" in text
    assert "warning: connector" in text
