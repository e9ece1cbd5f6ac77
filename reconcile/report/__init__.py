"""Formatters: terminal table, auditor CSV, lossless JSON Lines, and the --out-dir bundle."""

from enum import StrEnum


class BundleInputs(StrEnum):
    """What an --out-dir bundle keeps of its inputs: compressed copies, or their paths only."""

    COPY = "copy"
    REFERENCE = "reference"
