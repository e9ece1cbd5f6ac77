"""The Python duplicate collapsing as it was before ``engine.dedupe`` took it over: the oracle
tests/engine/test_dedupe.py holds the engine to.

One certificate, one verdict: copies of a certificate across or within exports collapse.

Exports overlap (two exports of one CA, issued and revoked exports combined, a re-run appended
to the file). A certificate is its issuer and serial; an identical copy is only counted, a
disagreeing copy loses to the revoked one, else to the newest, with a warning naming both
file:lines. An OpenSSL index.txt that reuses a serial for another subject is a broken CA, not a
copy: every row stays and one warning names the serial and its lines.

Rows stream: the first copy of each certificate goes on to the join at once, and per
certificate only one packed integer is kept (a fingerprint of its values, its rank and where
the winning copy is), about 100 bytes where a held record costs 600. Only when a later copy
outranks one already passed on (rare) must the run read its exports a second time, passing
exactly the winners (``winners``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import fields
from operator import attrgetter

from reconcile.identity import issuer_key, serial_hex
from reconcile.model import CaCertificate

log = logging.getLogger("reconcile")

_Key = int | tuple[int, str | None]
"""Within one issuer: the serial, or (serial, subject) for index.txt rows."""
_PROVENANCE = frozenset({"source", "line"})
_COMPARED = tuple(f.name for f in fields(CaCertificate) if f.name not in _PROVENANCE)
_compared = attrgetter(*_COMPARED)
"""The compared values as one tuple, in one C call (this runs once per CA row)."""
# Packed value, low bits first: line (32), source index (16), fingerprint (48), then the rank
# (revoked, issued minute, expiry minute): five 30-bit digits, 44 bytes.
_LINE_BITS, _SOURCE_BITS, _PRINT_BITS = 32, 16, 48
_WHERE_BITS = _LINE_BITS + _SOURCE_BITS
_RANK_SHIFT = _WHERE_BITS + _PRINT_BITS
_PRINT_MASK = (1 << _PRINT_BITS) - 1
_STAMP_OFFSET = 1 << 25  # minutes: keeps times back to 1906 positive
_STAMP_BITS = 27


def _fingerprint(cert: CaCertificate) -> int:
    return hash(_compared(cert)) & _PRINT_MASK


def _stamp(value: object) -> int:
    timestamp = getattr(value, "timestamp", None)
    if timestamp is None:
        return 0
    return min(max(int(timestamp()) // 60 + _STAMP_OFFSET, 1), (1 << _STAMP_BITS) - 1)


def _rank(cert: CaCertificate) -> int:
    """Revoked beats not revoked; then the newest issuance, then the latest expiry."""
    revoked = 1 if cert.revoked_at is not None else 0
    return (
        (revoked << (2 * _STAMP_BITS))
        | (_stamp(cert.not_before) << _STAMP_BITS)
        | _stamp(cert.not_after)
    )


class Collapser:
    """Passes each certificate on once; ``winners`` replays the exports when that is not enough.

    ``index_sources`` are the index.txt files, whose rows are one certificate per (issuer,
    serial, subject).
    """

    def __init__(self, index_sources: frozenset[str]) -> None:
        self.index_sources = index_sources
        self.duplicate_rows = 0
        self.warnings: list[str] = []
        self.replay_needed = False
        self._seen: dict[str | None, dict[_Key, int]] = {}
        self._sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self._issuers: dict[str, str] = {}
        self._subjects: dict[tuple[str | None, int], tuple[str | None, int]] = {}
        self._reused: dict[tuple[str | None, int], list[str]] = {}

    def _table(self, cert: CaCertificate) -> dict[_Key, int]:
        """The serials seen for this certificate's issuer (one dict per CA: no key tuples)."""
        issuer = None
        if cert.issuer is not None:
            issuer = self._issuers.get(cert.issuer)
            if issuer is None:
                issuer = self._issuers[cert.issuer] = issuer_key(cert.issuer)
        table = self._seen.get(issuer)
        if table is None:
            table = self._seen[issuer] = {}
        return table

    def _key(self, cert: CaCertificate) -> _Key:
        if cert.source in self.index_sources:
            return (cert.serial, cert.subject)
        return cert.serial

    def _where(self, cert: CaCertificate) -> int:
        index = self._source_index.get(cert.source)
        if index is None:
            index = self._source_index[cert.source] = len(self._sources)
            self._sources.append(cert.source)
        return (index << _LINE_BITS) | (cert.line & ((1 << _LINE_BITS) - 1))

    def _location(self, packed: int) -> str:
        where = packed & ((1 << _WHERE_BITS) - 1)
        return f"{self._sources[where >> _LINE_BITS]}:{where & ((1 << _LINE_BITS) - 1)}"

    def _note_reuse(self, cert: CaCertificate, where: str) -> None:
        if cert.source not in self.index_sources:
            return
        pair = (cert.issuer, cert.serial)
        first = self._subjects.get(pair)
        if first is None:
            self._subjects[pair] = (cert.subject, cert.line)
        elif first[0] != cert.subject:
            lines = self._reused.setdefault(pair, [f"{cert.source}:{first[1]}"])
            lines.append(where)

    def first_copies(self, certificates: Iterable[CaCertificate]) -> Iterator[CaCertificate]:
        """Each certificate's first copy, as it streams; counts and judges the later ones."""
        for cert in certificates:
            seen = self._table(cert)
            key = self._key(cert)
            packed = (
                (_rank(cert) << _RANK_SHIFT)
                | (_fingerprint(cert) << _WHERE_BITS)
                | self._where(cert)
            )
            old = seen.get(key)
            if old is None:
                seen[key] = packed
                self._note_reuse(cert, f"{cert.source}:{cert.line}")
                yield cert
                continue
            self.duplicate_rows += 1
            if (old >> _WHERE_BITS) & _PRINT_MASK == (packed >> _WHERE_BITS) & _PRINT_MASK:
                continue
            here = f"{cert.source}:{cert.line}"
            new_rank, old_rank = packed >> _RANK_SHIFT, old >> _RANK_SHIFT
            revoked = (new_rank >> (2 * _STAMP_BITS), old_rank >> (2 * _STAMP_BITS))
            if new_rank > old_rank:
                seen[key] = packed
                self.replay_needed = True
                winner, loser = here, self._location(old)
                why = "revoked" if revoked == (1, 0) else "newest"
            else:
                winner, loser = self._location(old), here
                why = (
                    "revoked" if revoked == (0, 1) else "newest" if new_rank < old_rank else "first"
                )
            self._warn(
                f"serial {serial_hex(cert.serial)} appears twice with different values: "
                f"{winner} ({why}) is kept over {loser}"
            )

    def winners(self, certificates: Iterable[CaCertificate]) -> Iterator[CaCertificate]:
        """A second read of the same exports: exactly the copy each certificate kept."""
        mask = (1 << _WHERE_BITS) - 1
        for cert in certificates:
            packed = self._table(cert).get(self._key(cert))
            if packed is not None and packed & mask == self._where(cert):
                yield cert

    def finish(self) -> None:
        """Warn once per serial an index.txt reuses (after every row was seen)."""
        for (_, serial), lines in self._reused.items():
            self._warn(
                f"serial {serial_hex(serial)} is reused for different subjects "
                f"({', '.join(lines)}): the CA database is inconsistent; every row is kept"
            )
        self._reused.clear()

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        self.warnings.append(text)
