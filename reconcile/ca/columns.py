"""Column maps: which header means which certificate field.

certutil writes localized display names as headers, and 'mapped' exports can have any header at
all, so both are driven by a small TOML file (format documented in docs/ca-exports.md). The
English certutil map ships as package data and is always applied under a user's map.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from reconcile.ca.formats import CaFormat
from reconcile.errors import ConfigError

FIELDS = frozenset(
    {
        "serial",
        "thumbprint",
        "issuer",
        "subject",
        "common_name",
        "requester",
        "template",
        "template_oid",
        "template_name",
        "request_id",
        "not_before",
        "not_after",
        "revoked_at",
        "disposition",
        "status",
        "san",
        "upn",
        "config_string",
        "cert_type",
    }
)
IGNORE = "ignore"
MAP_FORMATS = (CaFormat.CERTUTIL, CaFormat.MAPPED)
DATE_FORMATS = ("culture", "iso", "epoch-ms", "epoch-s")
_COMMON_KEYS = frozenset({"format", "columns", "null_values"})
_MAPPED_KEYS = _COMMON_KEYS | {"serial_base", "date_format", "delimiter", "revoked_values"}


def header_key(text: str) -> str:
    """How header cells are compared: spaces, quotes and a stray BOM ignored, case-folded."""
    return text.strip().lstrip("\ufeff").strip().strip('"').strip().casefold()


@dataclass(frozen=True)
class ColumnMap:
    """A parsed column map file."""

    source: str
    format: str
    columns: Mapping[str, str]
    null_values: frozenset[str] = frozenset()
    serial_base: int = 16
    date_format: str = "culture"
    delimiter: str | None = None
    revoked_values: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)

    def header_for(self, wanted: str) -> str:
        """The header text the map expects for a field, for messages."""
        return next((self.labels[k] for k, f in self.columns.items() if f == wanted), wanted)


def _strings(value: Any, what: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {what} must be a list of strings")
    return value


def parse_column_map(data: Mapping[str, Any], source: str, default_format: str | None) -> ColumnMap:
    """Validate a decoded TOML map; every mistake is a one-line ConfigError naming the file."""
    map_format = data.get("format", default_format)
    if map_format not in MAP_FORMATS:
        raise ConfigError(
            f'{source}: set format = "certutil" (localized certutil headers) or '
            f'format = "mapped" (any other CSV) in the column map'
        )
    allowed = _MAPPED_KEYS if map_format == "mapped" else _COMMON_KEYS
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) for a {map_format} map: {', '.join(unknown)}")
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise ConfigError(f"{source}: a [columns] table mapping header text to a field is required")
    columns: dict[str, str] = {}
    labels: dict[str, str] = {}
    for header, target in raw_columns.items():
        if not isinstance(target, str) or (target not in FIELDS and target != IGNORE):
            raise ConfigError(
                f"{source}: column {header!r} maps to {target!r}; fields are "
                f"{', '.join(sorted(FIELDS))} or {IGNORE!r}"
            )
        columns.setdefault(header_key(header), target)
        labels.setdefault(header_key(header), header.strip())
    if map_format == "mapped" and "serial" not in columns.values():
        raise ConfigError(f"{source}: no column is mapped to 'serial'")
    nulls = frozenset(_strings(data.get("null_values", []), "null_values", source))
    serial_base = data.get("serial_base", 16)
    if serial_base not in (16, 10) or isinstance(serial_base, bool):
        raise ConfigError(f"{source}: serial_base must be 16 or 10")
    date_format = data.get("date_format", "culture")
    if not isinstance(date_format, str) or (
        date_format not in DATE_FORMATS and "%" not in date_format
    ):
        raise ConfigError(
            f"{source}: date_format must be {', '.join(DATE_FORMATS)} or a strptime pattern"
        )
    delimiter = data.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ConfigError(f"{source}: delimiter must be one character")
    revoked = _strings(data.get("revoked_values", []), "revoked_values", source)
    return ColumnMap(
        source=source,
        format=map_format,
        columns=columns,
        null_values=nulls,
        serial_base=serial_base,
        date_format=date_format,
        delimiter=delimiter,
        revoked_values=frozenset(v.strip().casefold() for v in revoked),
        labels=labels,
    )


def load_column_map(path: Path, default_format: str | None = None) -> ColumnMap:
    """Read a column map file; default_format applies when the file has no format key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the column map: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: the column map is not valid TOML: {exc}") from None
    return parse_column_map(data, str(path), default_format)


@functools.cache
def english_certutil_map() -> ColumnMap:
    """The shipped English map, read from package data so it works outside the repository."""
    text = resources.files("reconcile").joinpath("data/certutil-columns-en.toml").read_text("utf-8")
    return parse_column_map(tomllib.loads(text), "certutil-columns-en.toml", "certutil")
