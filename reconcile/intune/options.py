"""What a fetch from Intune reads, and how: resolved from the settings once by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reconcile.graph.config import GraphConfig


class IntuneSource(StrEnum):
    """Which Intune collection tells delivery: per-profile states, the report export, or both."""

    STATES = "states"
    REPORT = "report"
    BOTH = "both"

    @property
    def collections(self) -> tuple[IntuneSource, ...]:
        """The sources actually read; ``both`` is states and report."""
        if self is IntuneSource.BOTH:
            return (IntuneSource.STATES, IntuneSource.REPORT)
        return (self,)


@dataclass(frozen=True)
class FetchOptions:
    """One snapshot fetch: where Graph is and how to sign in, what to read, and the limits."""

    graph: GraphConfig = field(default_factory=GraphConfig)
    source: IntuneSource = IntuneSource.STATES
    ca_sources: tuple[str, ...] = ()
    export_timeout: float = 600.0
    max_concurrency: int = 4
    report_raw_rows: bool = False
    max_snapshot_bytes: int = 4 * 1024**3
