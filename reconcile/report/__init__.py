"""Formatters: terminal table, auditor CSV, lossless JSON Lines, and the --out-dir bundle."""
