"""Canonical forms of serial numbers, thumbprints and issuer names.

Each side spells the same certificate differently: AD CS writes lowercase hex, EJBCA's database
decimal, .NET adds a leading 00, Vault separates bytes with ':' or '-'. Serials therefore compare
as integers, thumbprints as uppercase hex, issuers by their CN, case-folded.
"""

from __future__ import annotations

import re

_SEPARATORS = str.maketrans("", "", ":- \t")
_HEX = frozenset("0123456789abcdefABCDEF")
_DECIMAL = frozenset("0123456789")
_CN = re.compile(r"(?:^|[,/;+]\s*)CN\s*=\s*((?:\\.|[^,/;+])+)", re.IGNORECASE)


def parse_serial(text: str, base: int = 16) -> int:
    """Return the serial as an integer; raises ValueError naming what is wrong."""
    cleaned = text.strip().translate(_SEPARATORS)
    if base == 16 and cleaned[:2] in ("0x", "0X"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise ValueError("empty serial number")
    allowed = _HEX if base == 16 else _DECIMAL
    if not allowed.issuperset(cleaned):
        kind = "hexadecimal" if base == 16 else "decimal"
        raise ValueError(f"serial number {text.strip()[:60]!r} is not {kind}")
    if len(cleaned) > 80:
        raise ValueError("serial number longer than 40 bytes")
    return int(cleaned, base)


def serial_hex(serial: int) -> str:
    """The one spelling reconcile writes: uppercase hex, whole bytes, no separators."""
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def parse_thumbprint(text: str) -> str:
    """Return uppercase hex without separators; SHA-1 (40) or SHA-256 (64) digits."""
    cleaned = text.strip().translate(_SEPARATORS).upper()
    if not _HEX.issuperset(cleaned) or len(cleaned) not in (40, 64):
        raise ValueError(f"thumbprint {text.strip()[:80]!r} is not 40 or 64 hex digits")
    return cleaned


def issuer_key(issuer: str) -> str:
    """Compare issuers by CN when the text is a DN, else by the whole name, case-folded.

    Intune may say "CN=Contoso Issuing CA 1, DC=corp, DC=contoso" where the CA export is
    configured as "Contoso Issuing CA 1"; both reduce to "contoso issuing ca 1".
    """
    match = _CN.search(issuer)
    name = match.group(1) if match else issuer
    return " ".join(name.replace("\\", "").split()).casefold()
