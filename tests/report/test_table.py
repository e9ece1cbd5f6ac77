"""The terminal report fits the width it is given and never cuts the next step;
summary.txt (no width) is untruncated."""

from __future__ import annotations

import pytest

from reconcile import pipeline
from reconcile.demo import DEMO_AS_OF, DEMO_ISSUER, DEMO_TEMPLATES, demo_ca_export, demo_snapshot
from reconcile.model import RunResult, Status
from reconcile.report import table
from reconcile.settings import resolve
from tests.factories import ca_cert, intune_cert, result_with, verdict

LONG_DEVICE = "CONTOSO-KIOSK-WAREHOUSE-NORTH-DOCK-07-SCANNER-0042"
LONG_TEMPLATE = "ContosoIntuneSCEPWindowsKioskDevicesLongName"
LONG_STEP = (
    "device-side install failure: check the device's DeviceManagement event log for "
    "event 32 and the NDES server's IIS log for the request (usually a Windows problem)"
)


@pytest.fixture(scope="module")
def demo() -> RunResult:
    settings = resolve(
        {
            "ca_exports": (demo_ca_export(),),
            "snapshot": demo_snapshot(),
            "ca_issuer": (DEMO_ISSUER,),
            "templates": DEMO_TEMPLATES,
            "as_of": DEMO_AS_OF,
            "intune_source": "both",
        },
        {},
    )
    return pipeline.run(settings)


def _long() -> RunResult:
    return result_with(
        verdict(
            Status.NOT_INSTALLED,
            ca=ca_cert(0x61AB, template_name=LONG_TEMPLATE),
            intune=intune_cert(0x61AB, "installFailed", device_name=LONG_DEVICE),
            next_step=LONG_STEP,
        )
    )


def _words(text: str) -> str:
    return " ".join(text.split())


def _next_steps(text: str) -> str:
    """The next-step column's text (wrapped cells rejoined), or the whole text for blocks."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.endswith("next step")), None)
    if header is None:
        return _words(text)
    column = lines[header].index("next step")
    return _words(" ".join(line[column:] for line in lines[header + 2 :]))


@pytest.mark.parametrize("width", [80, 200])
def test_every_line_fits_and_every_next_step_is_whole(demo: RunResult, width: int):
    for result in (demo, _long()):
        text = table.render(result, 50, "", width)
        assert max(len(line) for line in text.splitlines()) <= width
        assert "…" not in text
        flat = _next_steps(text)
        for finding in result.findings:
            assert _words(finding.next_step or "") in flat


def test_a_wide_terminal_gets_columns_and_a_narrow_one_blocks(demo: RunResult):
    wide = table.render(demo, 50, "", 200)
    narrow = table.render(demo, 50, "", 80)
    assert "next step" in wide.splitlines()[17]
    assert "  next step: " in narrow and "status  " not in narrow.split("rejected")[1]


def test_without_a_width_nothing_is_shortened_or_wrapped():
    text = table.render(_long(), -1)
    assert LONG_STEP in text and LONG_DEVICE in text and LONG_TEMPLATE in text
    assert "…" not in text


def test_summary_names_every_status_with_zeros_and_a_third_header(demo: RunResult):
    lines = table.summary_table(demo).splitlines()
    assert lines[0].split() == ["status", "certificates", "kind"]
    shown = [line.split()[0] for line in lines[2:]]
    assert shown == [*(s.value for s in Status), "unknown_to_ca", "rejected"]
    assert any(line.split()[:2] == ["accepted", "0"] for line in lines)


def test_hidden_findings_are_named_within_the_width(demo: RunResult):
    text = table.render(demo, 2, "", 80)
    assert "more finding(s) not shown" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_cli_fits_columns_and_summary_txt_is_whole(tmp_path):
    from typer.testing import CliRunner

    from reconcile.cli import app

    args = [
        "run",
        "--ca-export",
        str(demo_ca_export()),
        "--snapshot",
        str(demo_snapshot()),
        "--ca-issuer",
        DEMO_ISSUER,
        "--intune-source",
        "both",
        "--as-of",
        DEMO_AS_OF.isoformat(),
        "--no-history",
        "--out-dir",
        str(tmp_path / "out"),
        *(a for t in DEMO_TEMPLATES for a in ("--template", t)),
    ]
    for columns, limit in (("80", 80), ("200", 200), (None, 120)):
        env = {"COLUMNS": columns}  # None: unset, as under cron
        result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert max(len(line) for line in result.stdout.splitlines()) <= limit
    summary = (tmp_path / "out" / "summary.txt").read_text(encoding="utf-8")
    assert "…" not in summary
    long_step = next(
        line for line in summary.splitlines() if "DeviceManagement-Enterprise-Diagnostics" in line
    )
    assert long_step.rstrip().endswith("and run `reconcile evidence add`")
