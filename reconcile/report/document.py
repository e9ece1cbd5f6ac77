"""The report every formatter writes: one run's result with its history, and which rows.

Each format is one ``write(handle, report)`` (``table``, ``csvout``, ``jsonl``, ``html``); the
caller builds the report once and picks the formats at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconcile.model import RunDelta, RunResult, RunRow, Verdict
from reconcile.report.historytext import format_delta


@dataclass(frozen=True, slots=True)
class Report:
    """``delta`` and ``runs`` are empty when history is off; ``max_rows`` and ``width`` shape
    the terminal text only (summary.txt keeps every row, unwrapped)."""

    result: RunResult
    delta: RunDelta | None = None
    runs: tuple[RunRow, ...] = ()
    all_rows: bool = False
    max_rows: int = -1
    width: int | None = None

    @property
    def rows(self) -> Sequence[Verdict]:
        """The certificates the data files list: every one with --all, else the findings."""
        return self.result.verdicts if self.all_rows else self.result.findings

    @property
    def preamble(self) -> str:
        """What changed since the previous run; empty without history."""
        return format_delta(self.delta) if self.delta is not None else ""
