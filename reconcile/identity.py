"""Canonical forms of serial numbers, thumbprints, issuer and device names.

Each side spells the same certificate differently: AD CS writes lowercase hex, EJBCA's database
decimal, .NET adds a leading 00, Vault separates bytes with ':' or '-'. Serials therefore compare
as integers, thumbprints as uppercase hex, issuers by their CN, case-folded. Device names compare
by ``device_key``, the one rule the join, device evidence and explain share.
"""

from __future__ import annotations

import re
import sys

_MAX_DIGITS = {16: 80, 10: 97}  # 40 bytes, more than RFC 5280's 20 octets allows
# LDAP/Windows form "CN=x, O=y" (most specific first; Windows quotes values holding commas) and
# OpenSSL's "/O=y/CN=x" (most specific last).
_CN_COMMA = re.compile(r'(?:^|[,;+])\s*CN\s*=\s*("(?:[^"]|"")*"|(?:\\.|[^,;+])*)', re.IGNORECASE)
_CN_SLASH = re.compile(r"/\s*CN\s*=((?:\\.|[^/+])*)", re.IGNORECASE)
_ESCAPE = re.compile(r"((?:\\[0-9A-Fa-f]{2})+)|\\(.)", re.DOTALL)


def _drop_separators(text: str) -> str:
    # Unrolled str.replace: several times faster than translate or a loop, and this runs per row.
    if " " in text:
        text = text.replace(" ", "")
    if ":" in text:
        text = text.replace(":", "")
    if "-" in text:
        text = text.replace("-", "")
    if "\t" in text:
        text = text.replace("\t", "")
    return text


def parse_serial(text: str, base: int = 16) -> int:
    """Return the serial as an integer; raises ValueError naming what is wrong.

    Hex may carry ':', '-', space or tab separators and a 0x prefix. Decimal (EJBCA's database)
    has no separators, so a '-' there is a sign, and a negative serial is refused.
    """
    stripped = text.strip()
    if base == 16:
        cleaned = _drop_separators(stripped)
        if cleaned[:2] in ("0x", "0X"):
            cleaned = cleaned[2:]
        kind = "hexadecimal"
    elif base == 10:
        cleaned = stripped.replace(" ", "").replace("\t", "")
        kind = "decimal"
    else:
        raise ValueError(f"serial base must be 16 or 10, not {base}")
    if not cleaned:
        raise ValueError("empty serial number")
    # int() alone would also take '_', signs, blanks and non-ASCII digits.
    if not (cleaned.isascii() and cleaned.isalnum()):
        if base == 10 and cleaned[0] == "-" and cleaned[1:].isdecimal() and cleaned.isascii():
            raise ValueError(f"serial number {stripped[:60]!r} is negative")
        raise ValueError(f"serial number {stripped[:60]!r} is not {kind}")
    significant = cleaned.lstrip("0")
    if len(significant) > _MAX_DIGITS[base]:
        raise ValueError("serial number longer than 40 bytes")
    try:
        return int(significant or "0", base)
    except ValueError:
        raise ValueError(f"serial number {stripped[:60]!r} is not {kind}") from None


def serial_hex(serial: int) -> str:
    """The one spelling reconcile writes: uppercase hex, whole bytes, no separators."""
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def parse_thumbprint(text: str) -> str:
    """Return uppercase hex without separators; SHA-1 (40) or SHA-256 (64) digits."""
    try:
        digest = bytes.fromhex(_drop_separators(text.strip()))
    except ValueError:
        digest = b""
    if len(digest) not in (20, 32):
        raise ValueError(f"thumbprint {text.strip()[:80]!r} is not 40 or 64 hex digits")
    return digest.hex().upper()


def _unescape(match: re.Match[str]) -> str:
    if match.group(1):
        return bytes.fromhex(match.group(1).replace("\\", "")).decode("utf-8", "replace")
    return match.group(2)


def common_name(dn: str) -> str | None:
    """The most specific CN of a DN in LDAP or OpenSSL slash form, unescaped; None if none."""
    text = dn.strip()
    if text.startswith("/"):
        found = _CN_SLASH.findall(text)
        value = found[-1] if found else None
    else:
        match = _CN_COMMA.search(text)
        value = match.group(1) if match else None
    if value is None:
        return None
    quoted = value.strip()
    if len(quoted) >= 2 and quoted[0] == quoted[-1] == '"':
        value = quoted[1:-1].replace('""', '"')
    else:
        # Unescape before stripping: "\ " is an escaped, significant trailing space.
        value = _ESCAPE.sub(_unescape, value).strip()
    return value or None


def issuer_key(issuer: str) -> str:
    """Compare issuers by CN when the text is a DN, else by the whole name, case-folded.

    Intune may say "CN=Contoso Issuing CA 1, DC=corp, DC=contoso" where the CA export is
    configured as "Contoso Issuing CA 1"; both reduce to "contoso issuing ca 1".
    """
    name = common_name(issuer)
    return " ".join((issuer if name is None else name).split()).casefold()


_SAN_DNS = re.compile(r"(?:DNS(?:\s*Name)?|dNSName)\s*[:=]\s*([^,;\s]+)", re.IGNORECASE)


def san_dns_names(san: str) -> list[str]:
    """The DNS names of a SAN as certutil (``DNS Name=x``), OpenSSL (``DNS:x``) or EJBCA
    (``dNSName=x``) write it."""
    return _SAN_DNS.findall(san)


# A DNS host name: two or more labels of letters, digits, '-' or '_', an optional final dot.
# Not an IPv4 address (its last label is all digits) and never a UPN or e-mail (no '@').
_HOST_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)*\.(?![\d.]*$)[\w-]+\.?")


def fold(text: str | None) -> str | None:
    """Case-folded and interned: profile and template names recur across a million records."""
    return sys.intern(text.casefold()) if text else None


def device_key(name: str) -> str:
    """The one way device names compare: case-folded, and a DNS host name by its first label.

    Intune names a Windows device ``CONTOSO-LT-0099`` while its certificate's CN, SAN or event
    log may say ``contoso-lt-0099.corp.contoso.com``: both are the same device. Names that are
    not host names (``megan.bowen@contoso.com``, ``Alex's iPhone 12.1``, an IP address) are kept
    whole, so two users called Megan never become one device.
    """
    text = name.strip()
    if "." in text and "@" not in text and _HOST_NAME.fullmatch(text):
        text = text.partition(".")[0]
    return sys.intern(text.casefold())


def device_fold(name: str | None) -> str | None:
    """``device_key`` of a name that may be missing; None when there is none."""
    if not name:
        return None
    return device_key(name) or None
