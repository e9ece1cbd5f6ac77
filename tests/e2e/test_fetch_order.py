"""A live fetch gives the same snapshot bytes however the worker threads interleave: the
certificate states land in profile order, so the sha256 in metadata.json, the bundle's copy
and the run id depend on the tenant, not on the timing."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from reconcile.emulator import GraphEmulator, parse_fault
from reconcile.emulator.demo import DEMO_SNAPSHOT
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from tests.e2e.test_fetch import DEMO_TENANT, settings_for


@pytest.fixture(autouse=True)
def _quick_export_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)


def test_states_land_in_profile_order_whatever_answers_first(tmp_path: Path) -> None:
    got = []
    with GraphEmulator(
        snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, page_size=2, max_page_size=2
    ) as emu:
        for n, fault in enumerate((None, "slow:route=states,times=1,delay=0.4", None)):
            emu.faults.clear()
            if fault is not None:
                emu.faults.append(parse_fault(fault))
            out = fetch_snapshot(settings_for(emu).fetch_options(), tmp_path / f"snap{n}")
            got.append(out)
    states = [(p / "certificate_states.jsonl").read_bytes() for p in got]
    assert states[0] == states[1] == states[2]
    metas = [json.loads((p / "metadata.json").read_text(encoding="utf-8")) for p in got]
    assert len({m["sha256"]["certificate_states"] for m in metas}) == 1
    profiles = [json.loads(line)["id"] for line in (got[0] / "profiles.jsonl").open()]
    seen: list[str] = []
    for line in states[0].splitlines():
        profile = json.loads(line)["@reconcile.profileId"]
        if not seen or seen[-1] != profile:
            seen.append(profile)
    assert seen == [p for p in profiles if p in seen], "states not grouped in profile order"


def test_per_profile_report_jobs_land_in_profile_order(tmp_path: Path) -> None:
    """The fallback's jobs finish in any order; their rows still land profile by profile."""
    got = []
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT) as emu:
        for n, extra in enumerate((None, "slow:route=download,times=1,delay=0.4")):
            emu.faults.clear()
            emu.faults.append(parse_fault("policy-filter-required:times=forever"))
            if extra is not None:
                emu.faults.append(parse_fault(extra))
            settings = settings_for(emu, "report", RECONCILE_MAX_CONCURRENCY="3")
            got.append(fetch_snapshot(settings.fetch_options(), tmp_path / f"snap{n}"))
    rows = [(p / "report_rows.jsonl").read_bytes() for p in got]
    assert rows[0] == rows[1] and rows[0]
    policies: list[str] = []
    for line in rows[0].splitlines():
        policy = json.loads(line)["PolicyId"]
        if not policies or policies[-1] != policy:
            policies.append(policy)
    assert len(policies) == len(set(policies)), "rows of one profile are split up"
