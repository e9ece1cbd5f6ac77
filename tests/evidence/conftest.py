"""Fixtures for the device-evidence tests: the article's excerpts and our own variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.evidence.source import ParseOptions

EVIDENCE = Path(__file__).resolve().parents[1] / "fixtures" / "evidence"


@pytest.fixture
def logs() -> Path:
    return EVIDENCE


@pytest.fixture
def pixel() -> ParseOptions:
    return ParseOptions(device="PIXEL-7")
