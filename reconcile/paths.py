"""Where reconcile keeps its files by default: the per-user config, data and cache directories.

Every default location is named here once; a configured path always wins (``Settings``).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

CONFIG_NAME = "reconcile.toml"


def user_config_path() -> Path:
    """The per-user configuration file (it need not exist)."""
    return Path(platformdirs.user_config_dir("reconcile", appauthor=False)) / CONFIG_NAME


def default_history_db() -> Path:
    return platformdirs.user_data_path("reconcile") / "history.sqlite3"


def default_evidence_db() -> Path:
    return platformdirs.user_data_path("reconcile") / "evidence.db"


def default_token_cache() -> Path:
    return Path(platformdirs.user_cache_dir("reconcile")) / "msal-token-cache.json"


def lock_beside(history_db: Path) -> Path:
    """Next to the history database, so jobs sharing a history share the lock."""
    return history_db.with_name(history_db.name + ".lock")
