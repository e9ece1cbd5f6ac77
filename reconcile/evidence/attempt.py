"""The bookkeeping every parser shares: one enrollment attempt, advanced line by line.

A failure only sticks if nothing after it got as far again: clients retry, and a GetCACaps
timeout followed by a successful enrollment is a success.
"""

from __future__ import annotations

from datetime import datetime

from reconcile.evidence.model import EvidenceRecord, Outcome, Platform, Stage, Step


class Attempt:
    """A mutable accumulator; ``record()`` freezes it into an EvidenceRecord."""

    def __init__(self, line: int, profile: str | None = None, profile_id: str | None = None):
        self.line = line
        self.profile = profile
        self.profile_id = profile_id
        self.stage: Stage | None = None
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.steps: list[Step] = []

    @property
    def finished(self) -> bool:
        return bool(self.failures) or self.installed

    @property
    def installed(self) -> bool:
        return self.stage is not None and self.stage.rank >= Stage.CERT_INSTALLED.rank

    def name(self, profile: str | None, profile_id: str | None) -> None:
        """Learn the profile later in the attempt (iOS and Windows name it late)."""
        if profile and not self.profile:
            self.profile = profile
        if profile_id and not self.profile_id:
            self.profile_id = profile_id

    def reach(self, stage: Stage, time: datetime | None, text: str, line: int) -> None:
        current = self.stage.rank if self.stage is not None else -1
        if stage.rank >= current:
            self.failures.clear()
        if stage.rank > current:
            self.stage = stage
            self.steps.append(Step(time, stage, text, line))
        else:
            self.steps.append(Step(time, None, text, line))

    def note(self, time: datetime | None, text: str, line: int, *, keep: bool = False) -> None:
        """A recognised line that moves nothing; ``keep`` also puts it in the detail."""
        self.steps.append(Step(time, None, text, line))
        if keep:
            self.notes.append(text)

    def fail(self, time: datetime | None, text: str, line: int) -> None:
        self.failures.append(text)
        self.steps.append(Step(time, None, f"FAILED: {text}", line))

    def record(
        self, platform: Platform, source: str, device: str, ended: str | None = None
    ) -> EvidenceRecord:
        """``ended`` explains an attempt the log leaves open better than its last line can."""
        if self.installed:
            outcome = Outcome.INSTALLED
        elif self.failures:
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.IN_PROGRESS
        details = list(self.notes)
        if self.failures:
            details.extend(self.failures)
        elif ended is not None:
            details.append(ended)
        elif outcome is Outcome.IN_PROGRESS and self.steps:
            details.append(f"log ends after: {self.steps[-1].text}")
        return EvidenceRecord(
            platform=platform,
            source=source,
            line=self.line,
            device=device,
            profile=self.profile,
            profile_id=self.profile_id,
            stage=self.stage,
            outcome=outcome,
            detail="; ".join(dict.fromkeys(details)),
            steps=tuple(self.steps),
        )
