"""Accepted exceptions: findings someone has looked at and signed off, until a date.

An exception is a decision with an owner and an expiry, not a silence: an accepted finding is
still listed (status ``accepted``, the owner and reason in ``reason``), and once the expiry date
has passed the finding is flagged again and a warning names the lapsed exception.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import stat
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from reconcile.errors import ConfigError
from reconcile.identity import issuer_key, parse_serial, serial_hex
from reconcile.model import InputFile, Status, Verdict, verdict_spool
from reconcile.spool import Spool

log = logging.getLogger("reconcile.accepted")

_KEYS = frozenset({"serial", "device", "issuer", "reason", "owner", "expires"})


@dataclass(frozen=True, slots=True)
class AcceptedException:
    """One ``[[exception]]`` entry; ``index`` is its 1-based position in the file."""

    index: int
    serial: int | None
    device: str | None
    issuer: str | None
    reason: str
    owner: str
    expires: date

    def describe(self) -> str:
        target = f"serial {serial_hex(self.serial)}" if self.serial is not None else ""
        target = target or f"device {self.device}"
        return f"exception #{self.index} ({target}, owner {self.owner})"

    def matches(self, verdict: Verdict) -> bool:
        if self.issuer is not None and (
            verdict.ca.issuer is None or issuer_key(verdict.ca.issuer) != self.issuer
        ):
            return False
        if self.serial is not None:
            return verdict.ca.serial == self.serial
        wanted = (self.device or "").casefold()
        return wanted in _device_names(verdict)


@dataclass(frozen=True, slots=True)
class Exceptions:
    entries: tuple[AcceptedException, ...]
    input_file: InputFile


def _device_names(verdict: Verdict) -> set[str]:
    """Every name of the finding's device, including the one its CA certificate names (CN or
    --device-pattern): a device exception covers findings known only from the CA too.

    Compared whole and case-insensitively, not by identity.device_key: a waiver names exactly
    what it waives, and widening it to other DNS suffixes would hide findings."""
    names: set[str] = {verdict.ca_device} if verdict.ca_device else set()
    if verdict.intune is not None:
        names.update(n for n in (verdict.intune.device_name, verdict.intune.device_id) if n)
    if verdict.device is not None:
        names.update(
            n
            for n in (
                verdict.device.device_name,
                verdict.device.id,
                verdict.device.azure_ad_device_id,
            )
            if n
        )
    return {n.casefold() for n in names}


def load(path: Path) -> Exceptions:
    """Parse and validate every entry; a bad entry is a ConfigError naming file and entry."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigError(f"{path}: exceptions file is not a regular file")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read exceptions file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    unknown = set(data) - {"exception"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    items = data.get("exception", [])
    if not isinstance(items, list):
        raise ConfigError(f"{path}: 'exception' must be an array of tables ([[exception]])")
    entries = tuple(_entry(path, index, item) for index, item in enumerate(items, start=1))
    digest = hashlib.sha256(raw).hexdigest()
    return Exceptions(entries, InputFile(str(path), "exceptions", "toml", digest, len(entries), 0))


def _entry(path: Path, index: int, item: Any) -> AcceptedException:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{path}: exception #{index}: {problem}")

    if not isinstance(item, dict):
        raise bad("must be a table")
    unknown = set(item) - _KEYS
    if unknown:
        raise bad(f"unknown key(s): {', '.join(sorted(unknown))}")
    if ("serial" in item) == ("device" in item):
        raise bad("give exactly one of 'serial' or 'device'")
    serial = None
    if "serial" in item:
        try:
            serial = parse_serial(str(item["serial"]))
        except ValueError as exc:
            raise bad(str(exc)) from None
    texts = {}
    for key in ("device", "issuer", "reason", "owner"):
        value = item.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(f"'{key}' must be non-empty text")
        texts[key] = value.strip() if isinstance(value, str) else None
    for key in ("reason", "owner"):
        if texts[key] is None:
            raise bad(f"'{key}' is required")
    return AcceptedException(
        index=index,
        serial=serial,
        device=texts["device"],
        issuer=issuer_key(texts["issuer"]) if texts["issuer"] else None,
        reason=texts["reason"] or "",
        owner=texts["owner"] or "",
        expires=_expiry(item.get("expires"), bad),
    )


def _expiry(value: Any, bad: Any) -> date:
    if isinstance(value, datetime):
        raise bad("'expires' must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    if value is None:
        raise bad("'expires' is required (YYYY-MM-DD)")
    raise bad(f"'expires' {value!r} is not a date (YYYY-MM-DD)")


def apply(
    verdicts: Sequence[Verdict], exceptions: Sequence[AcceptedException], as_of: datetime
) -> Spool[Verdict]:
    """Findings matching an exception valid on the as-of date become ``accepted``; the
    verdicts are read once and spooled anew.

    An exception is valid through its ``expires`` day. Expired ones match nothing and each is
    named in a warning with the number of findings it would have covered.
    """
    today = as_of.date()
    valid = [e for e in exceptions if e.expires >= today]
    expired = [e for e in exceptions if e.expires < today]
    lapsed: dict[int, int] = {}
    out = verdict_spool(_accepted(verdicts, valid, expired, lapsed), copy_of=verdicts)
    for e in expired:
        log.warning(
            "%s expired on %s; %d finding(s) it covered are flagged again",
            e.describe(),
            e.expires.isoformat(),
            lapsed.get(e.index, 0),
        )
    return out


def _accepted(
    verdicts: Iterable[Verdict],
    valid: Sequence[AcceptedException],
    expired: Sequence[AcceptedException],
    lapsed: dict[int, int],
) -> Iterator[Verdict]:
    """Each verdict, accepted when a valid exception matches; counts the lapsed matches."""
    for verdict in verdicts:
        if not verdict.is_finding:
            yield verdict
            continue
        match = next((e for e in valid if e.matches(verdict)), None)
        if match is None:
            for e in expired:
                if e.matches(verdict):
                    lapsed[e.index] = lapsed.get(e.index, 0) + 1
            yield verdict
            continue
        yield (
            dataclasses.replace(
                verdict,
                status=Status.ACCEPTED,
                reason=(
                    f"accepted until {match.expires.isoformat()} by {match.owner}: {match.reason}"
                    f" (was {verdict.status.value}: {verdict.reason})"
                ),
                next_step="",  # the old status's advice; with_next_steps gives the new one's
            )
        )
