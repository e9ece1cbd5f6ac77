"""What a device log proves about one SCEP enrollment: how far it got, and whether it ended.

A CA row says a certificate was issued; Intune says whether it heard back. Only the device can
say whether the certificate arrived, so each enrollment attempt found in a log becomes one
EvidenceRecord with the furthest SCEP workflow stage it reached and its outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import unquote


class Platform(StrEnum):
    ANDROID = "android"
    IOS = "ios"
    WINDOWS = "windows"


class Stage(StrEnum):
    """SCEP workflow stages in the order a device passes them; ``rank`` compares them."""

    ROOT_INSTALLED = "root_installed"
    ENROLLMENT_REQUESTED = "enrollment_requested"
    CA_CERT_FETCHED = "ca_cert_fetched"
    PKI_OPERATION_SENT = "pki_operation_sent"
    CERT_ISSUED = "cert_issued"
    CERT_INSTALLED = "cert_installed"
    ACCESS_GRANTED = "access_granted"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {stage: position for position, stage in enumerate(Stage)}


class Outcome(StrEnum):
    INSTALLED = "installed"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Step:
    """One recognised log line of an attempt; ``stage`` is set when the line advanced it."""

    time: datetime | None
    stage: Stage | None
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One enrollment attempt as a device log shows it."""

    platform: Platform
    source: str
    line: int
    device: str
    profile: str | None
    profile_id: str | None
    stage: Stage | None
    outcome: Outcome
    detail: str
    steps: tuple[Step, ...]

    @property
    def started_at(self) -> datetime | None:
        return next((s.time for s in self.steps if s.time is not None), None)

    @property
    def time(self) -> datetime | None:
        """When the attempt was last seen; for a finished attempt, when it ended."""
        return next((s.time for s in reversed(self.steps) if s.time is not None), None)

    @property
    def installed_at(self) -> datetime | None:
        for step in self.steps:
            if step.stage is not None and step.stage.rank >= Stage.CERT_INSTALLED.rank:
                return step.time
        return None

    def summary(self) -> str:
        """One line for terminals and the verdict's evidence column."""
        stage = self.stage.value if self.stage is not None else "no stage"
        profile = f" profile {self.profile}" if self.profile else ""
        when = self.time.strftime("%Y-%m-%dT%H:%M:%SZ") if self.time else "time unknown"
        detail = f": {self.detail}" if self.detail else ""
        return (
            f"{self.platform.value} log {self.source}:{self.line}:{profile} "
            f"{self.outcome.value} at {stage} ({when}){detail}"
        )


@dataclass(frozen=True, slots=True)
class ParsedLog:
    """Everything one file proved, plus what it could not read."""

    path: str
    sha256: str
    platform: Platform
    records: tuple[EvidenceRecord, ...]
    units: int
    skipped: int
    unit: str
    undated: bool = False
    warnings: tuple[str, ...] = ()


_PROFILE = re.compile(
    r"(ModelName[=_]AC_[^\s;'\"\\)]*?LogicalName_[0-9A-Za-z_.…]+(?:[;_]Hash[=_]-?\d+)?)"
)
_LOGICAL = re.compile(
    r"LogicalName_([0-9A-Fa-f]{8}(?:_[0-9A-Fa-f]{4}){3}_[0-9A-Fa-f]{12})(?![0-9A-Fa-f])"
)


def find_profile(text: str) -> tuple[str | None, str | None]:
    """Return (profile as logged, Intune profile id) from a ModelName=AC_…/LogicalName_… text.

    Intune names the SCEP payload after the account (AC_) and the policy (LogicalName_ with the
    profile GUID's dashes written as underscores); Android URL-encodes the slash.
    """
    match = _PROFILE.search(unquote(text))
    if match is None:
        return None, None
    profile = match.group(1)
    logical = _LOGICAL.search(profile)
    profile_id = logical.group(1).replace("_", "-").lower() if logical else None
    return profile, profile_id
