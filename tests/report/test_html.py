"""The HTML report: escaped, self-contained, and readable at 1366 px in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile.history import store as history
from reconcile.model import InputFile, Status
from reconcile.report import html
from tests.factories import AS_OF, ca_cert, device, intune_cert, result_with, verdict
from tests.helpers import record_run

HOSTILE_DEVICE = "<img src=x onerror=alert(1)>"
HOSTILE_USER = '=HYPERLINK("http://evil.example","x")'
SCRIPT_BREAK = "</script><script>alert(2)</script>"
CHROMIUM = "/usr/bin/chromium"


def _result(count: int = 40):
    verdicts = []
    for i in range(count):
        cert = ca_cert(
            serial=(0x61000000066AA11BB22CC33DD44 << 40) + i,
            thumbprint=f"{i:02X}" * 32,
            common_name=f"PC-{i:03d}",
            subject=f"CN=PC-{i:03d},OU=Very Long Organisational Unit Name For Wrapping,O=Contoso",
            line=i + 2,
        )
        name = HOSTILE_DEVICE if i == 1 else SCRIPT_BREAK if i == 2 else f"LAPTOP-{i:05d}"
        verdicts.append(
            verdict(
                Status.NOT_INSTALLED if i % 3 else Status.NOT_REPORTED,
                ca=cert,
                intune=intune_cert(
                    cert.serial, "installFailed", device_name=name, user=HOSTILE_USER
                )
                if i % 3
                else None,
                device=device(name) if i % 3 else None,
                reason="Intune reports state 'installFailed' after " + "retry " * 12,
                next_step="Check the NDES connector and the device's Event Viewer log.",
            )
        )
    verdicts.append(verdict(Status.DELIVERED))
    inputs = (
        InputFile(
            "/srv/exports/a/very/long/path/to/the/certutil-export-of-the-issuing-ca-2026-11-20.csv",
            "ca-export",
            "certutil",
            "ab" * 32,
            41,
            0,
        ),
    )
    return result_with(*verdicts, inputs=inputs, tenant_id="00000000-0000-4000-8000-000000000001")


def _history(tmp_path: Path, result):
    db = history.open_db(tmp_path / "h.sqlite3")
    for day in range(3, 0, -1):
        earlier = result_with(
            *result.verdicts[: 10 * day],
            run_id=f"r{day}",
            as_of=AS_OF - timedelta(days=day),
            tenant_id=result.tenant_id,
        )
        record_run(db, earlier, 1, 1.0)
    annotated, delta = record_run(db, result, 1, 1.0)
    runs = history.trend(db)
    db.close()
    return annotated, delta, runs


def test_every_value_from_graph_is_escaped():
    page = html.render(_result())
    assert HOSTILE_DEVICE not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "</script><script>alert(2)" not in page
    assert page.count("<script>") == 1
    assert "=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;)" in page


def test_page_fetches_nothing():
    page = html.render(_result())
    assert "default-src 'none'" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


def test_trend_chart_from_history(tmp_path):
    annotated, delta, runs = _history(tmp_path, _result())
    page = html.render(annotated, delta, runs)
    assert page.count("<polyline") == 2
    assert f"Findings per run, {len(runs)} run(s)" in page
    assert "What changed" in page and "Since run r1" in page


def test_row_cap_is_stated(monkeypatch):
    monkeypatch.setattr(html, "MAX_ROWS", 5)
    page = html.render(_result(12))
    assert page.count('<tr data-status="') == 5
    assert "Showing the first 5 of 12 rows" in page


def _chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} is missing; run scripts/ensure-chromium.sh (make pytest does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def _browser(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1366,900",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


PROBE_HEAD = (
    "<script>window.__alerts=[];window.alert=function(m){window.__alerts.push(m);};</script>"
)
PROBE_BODY = (
    "<script>var b=document.body;"
    "b.setAttribute('data-scroll-width',String(document.documentElement.scrollWidth));"
    "b.setAttribute('data-viewport',String(window.innerWidth));"
    "b.setAttribute('data-images',String(document.images.length));"
    "b.setAttribute('data-scripts',String(document.scripts.length));"
    "b.setAttribute('data-alerts',String(window.__alerts.length));</script>"
)


def test_renders_in_chromium_without_sideways_scrolling(tmp_path):
    annotated, delta, runs = _history(tmp_path, _result())
    page = html.render(annotated, delta, runs)
    probed = tmp_path / "probed.html"
    probed.write_text(
        page.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_BODY + "</body>"),
        encoding="utf-8",
    )
    dom = _browser(probed, tmp_path / "profile-dom", "--dump-dom").stdout
    attrs = dict(re.findall(r'data-(scroll-width|viewport|images|scripts|alerts)="(\d+)"', dom))
    assert int(attrs["viewport"]) == 1366
    assert int(attrs["scroll-width"]) <= int(attrs["viewport"])
    assert attrs["images"] == "0"
    assert attrs["alerts"] == "0"
    assert attrs["scripts"] == "3"  # the two probes and the page's own
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert HOSTILE_USER.replace('"', "&quot;") in dom or HOSTILE_USER in dom

    plain = tmp_path / "report.html"
    plain.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    _browser(plain, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


LONG_TEMPLATES = ("ContosoIntuneSCEPiOS", "ContosoIntuneSCEPWindows", "ContosoIntunePKCSAndroid")


def _polish_result():
    statuses = (
        Status.NOT_REPORTED,
        Status.SUPERSEDED,
        Status.INSTALLED_NOT_REPORTED,
        Status.NOT_INSTALLED,
    )
    verdicts = []
    for i in range(12):
        cert = ca_cert(serial=0x6100 + i, template_name=LONG_TEMPLATES[i % 3], template_oid=None)
        verdicts.append(
            verdict(
                statuses[i % 4],
                ca=cert,
                intune=intune_cert(cert.serial, "responsePending", device_name=f"PC-{i}"),
            )
        )
    unknown = tuple(
        intune_cert(0x7700 + i, "installed", device_name=f"ORPHAN-{i}", profile_name="Wi-Fi SCEP")
        for i in range(3)
    )
    return result_with(*verdicts, unknown_to_ca=unknown)


def test_cards_show_every_status_and_superseded_is_not_an_action():
    page = html.render(_polish_result())
    for status in (*(s.value for s in Status), "unknown_to_ca"):
        assert f"<span>{status}</span>" in page
    assert '<div class="card"><b>0</b><span>accepted</span></div>' in page
    assert '<div class="card info"><b>3</b><span>superseded</span></div>' in page
    assert '<div class="card finding"><b>3</b><span>not_reported</span></div>' in page
    assert "ORPHAN-2" in page and "Unknown to the CA (3)" in page


POLISH_PROBE = (
    "<script>var b=document.body,broken=0;"
    "document.querySelectorAll('.w').forEach(function(w){var td=w.closest('td');"
    "if(w.getClientRects().length>1)broken++;"
    "if(w.getBoundingClientRect().right>td.getBoundingClientRect().right+1)broken++;});"
    "b.setAttribute('data-broken',String(broken));"
    "b.setAttribute('data-words',String(document.querySelectorAll('.w').length));"
    "b.setAttribute('data-superseded',getComputedStyle(document.querySelector("
    "'td.s-superseded')).color);"
    "b.setAttribute('data-action',getComputedStyle(document.querySelector("
    "'td.s-not_reported')).color);"
    "b.setAttribute('data-unknown',String(document.querySelectorAll("
    "'#unknown-to-ca tbody tr').length));</script>"
)


def test_names_never_break_mid_word_in_chromium(tmp_path):
    page = html.render(_polish_result())
    probed = tmp_path / "polish.html"
    probed.write_text(page.replace("</body>", POLISH_PROBE + "</body>"), encoding="utf-8")
    dom = _browser(probed, tmp_path / "profile-polish", "--dump-dom").stdout
    attrs = dict(re.findall(r'data-(broken|words|superseded|action|unknown)="([^"]*)"', dom))
    assert int(attrs["words"]) > 40
    assert attrs["broken"] == "0"
    assert attrs["superseded"] != attrs["action"]
    assert attrs["unknown"] == "3"


def test_templates_ship_as_package_data():
    """The page is built from templates: a wheel without them could not write report.html."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["reconcile"]
    templates = sorted((root / "reconcile" / "report" / "templates").iterdir())
    assert {t.name for t in templates} >= {"report.html", "report.css", "report.js"}
    for template in templates:
        name = template.relative_to(root / "reconcile").as_posix()
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


def test_every_value_is_escaped_by_default():
    """Autoescaping is the environment's default: a value is never written raw."""
    page = html._environment().from_string("<td>{{ v }}</td>").render(v='<b x="1">&\'')
    assert page == "<td>&lt;b x=&quot;1&quot;&gt;&amp;&#x27;</td>"
