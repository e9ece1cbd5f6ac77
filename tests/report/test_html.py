"""The HTML report: escaped, self-contained, and readable at 1366 px in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile import history
from reconcile.model import InputFile, Status
from reconcile.report import html
from tests.factories import AS_OF, ca_cert, device, intune_cert, result_with, verdict

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
        history.record_run(db, earlier, 1, 1.0)
    annotated, delta = history.record_run(db, result, 1, 1.0)
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
