"""What a fetch from Intune reads, and how: resolved from the settings once by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from reconcile.graph.config import GraphConfig
from reconcile.model import IntuneSource


class SourceChoice(StrEnum):
    """The ``intune.source`` setting: which collections tell delivery (model.IntuneSource)."""

    STATES = "states"
    REPORT = "report"
    BOTH = "both"

    @property
    def collections(self) -> tuple[IntuneSource, ...]:
        """The sources actually read; ``both`` is states and report."""
        if self is SourceChoice.BOTH:
            return (IntuneSource.STATES, IntuneSource.REPORT)
        return (IntuneSource(self.value),)


@dataclass(frozen=True)
class FetchOptions:
    """One snapshot fetch: where Graph is and how to sign in, what to read, and the limits."""

    graph: GraphConfig = field(default_factory=GraphConfig)
    source: SourceChoice = SourceChoice.STATES
    ca_sources: tuple[str, ...] = ()
    export_timeout: float = 600.0
    max_concurrency: int = 4
    report_raw_rows: bool = False
    max_snapshot_bytes: int = 4 * 1024**3
    fetched_at: datetime | None = None
    """Recorded as the snapshot's fetched_at; None means the clock at the fetch."""
