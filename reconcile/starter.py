"""``reconcile init``: a commented starter configuration and a column map to copy from.

The starter names the few settings a first run needs, uncommented where a value must be
filled in, and lists every other key commented out at its default, grouped by table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from reconcile.errors import UsageError
from reconcile.paths import CONFIG_NAME
from reconcile.settings import SETTING_FIELDS

COLUMN_MAP_NAME = "reconcile-columns.toml"

_HEADER = f"""\
# reconcile configuration, written by `reconcile init`.
# reconcile reads ./{CONFIG_NAME}, else the one in your user config directory; --config or
# RECONCILE_CONFIG choose another. Flags beat RECONCILE_* variables, which beat this file.
# Keep secrets (graph.client_secret, the certificate password, the webhook URL) in the
# environment, not here. `reconcile doctor` checks sign-in and permissions.
"""

# Filled in for a first run; everything else stays commented at its default.
_FIRST_RUN = {
    "ca.exports": '["issued.csv"]  # certutil -view csv > issued.csv on the CA',
    "graph.tenant_id": '"00000000-0000-0000-0000-000000000000"  # your Entra tenant id',
    "graph.client_id": '"00000000-0000-0000-0000-000000000000"  # the app registration',
}


def _value(default: object) -> str:
    if isinstance(default, tuple):
        return json.dumps([str(v) for v in default])
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None:
        return '""'
    if isinstance(default, int | float):
        return str(default)
    return json.dumps(str(default))


def starter_toml() -> str:
    lines = [_HEADER]
    tables: dict[str, list[str]] = {}
    for field in SETTING_FIELDS.values():
        dotted = field.metadata["toml"]
        table, key = dotted.split(".", 1)
        entry = tables.setdefault(table, [])
        env = field.metadata["env"]
        entry.append(f"# {field.metadata['help']}" + (f" (env {env})" if env else ""))
        if dotted in _FIRST_RUN:
            entry.append(f"{key} = {_FIRST_RUN[dotted]}")
        elif dotted == "ca.column_map":
            entry.append(f'# {key} = "{COLUMN_MAP_NAME}"  # for a CA in another language')
        else:
            entry.append(f"# {key} = {_value(field.default)}")
    for table, entries in tables.items():
        lines += [f"[{table}]", *entries, ""]
    return "\n".join(lines)


def column_map_toml() -> str:
    """The bundled English certutil map, to be edited for a CA in another display language."""
    return (resources.files("reconcile") / "data" / "certutil-columns-en.toml").read_text(
        encoding="utf-8"
    )


def _files() -> Iterator[tuple[str, str]]:
    yield CONFIG_NAME, starter_toml()
    yield COLUMN_MAP_NAME, column_map_toml()


def write_starter(directory: Path, force: bool = False) -> list[Path]:
    """Both files in ``directory``; refuses to overwrite either unless ``force``."""
    targets = [(directory / name, text) for name, text in _files()]
    existing = [str(path) for path, _ in targets if path.exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in targets:
        path.write_text(text, encoding="utf-8")
    return [path for path, _ in targets]
