"""The guards' Python passes over the CA stream and the Intune entries, as they were before
the engine took them over: the oracles tests/engine/test_guards.py holds
``engine.guards`` to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from reconcile.ca import ExportReader
from reconcile.engine.guards import decide_issuer
from reconcile.identity import issuer_key
from reconcile.intune.side import Entry
from reconcile.join import in_scope, wanted_templates
from reconcile.model import CaCertificate


class Tally:
    """Counts templates and in-scope rows per export as the rows stream past (before copies
    collapse: an export whose rows all repeat another's is not empty)."""

    def __init__(self, certificates: Iterable[CaCertificate], templates: Sequence[str]) -> None:
        self._certificates = certificates
        self._wanted = wanted_templates(templates)
        self.templates: Counter[tuple[str | None, str | None]] = Counter()
        self.in_scope: Counter[str] = Counter()

    def __iter__(self) -> Iterator[CaCertificate]:
        templates, in_scope_rows = self.templates, self.in_scope
        for cert in self._certificates:
            templates[cert.template_oid, cert.template_name] += 1
            if in_scope(cert, self._wanted):
                in_scope_rows[cert.source] += 1
            yield cert


def infer_issuers(
    issuerless: Sequence[tuple[int, ExportReader]], entries: Sequence[Entry]
) -> tuple[dict[int, str], list[str]]:
    """Issuers for the exports that name none, from the Intune records their serials match.

    With one issuer in Intune nothing can be confused. With several, a serial-only match could
    count another CA's delivery: the issuer that accounts for nearly all matched serials is
    used (and said); anything less stops the run asking for --ca-issuer. Costs one extra read
    of those exports, only in that case.
    """
    issuers = {issuer_key(e.issuer): e.issuer for e in entries if e.issuer}
    if len(issuers) < 2 or not issuerless:
        return {}, []
    by_serial: dict[int, set[str]] = {}
    for entry in entries:
        if entry.serial is not None and entry.issuer:
            by_serial.setdefault(entry.serial, set()).add(issuer_key(entry.issuer))
    chosen: dict[int, str] = {}
    notes = []
    for index, reader in issuerless:
        source = str(reader.path)
        votes: Counter[str] = Counter()
        matched = 0
        with ExportReader(reader.path, reader.options) as again:
            for cert in again:
                if isinstance(cert, CaCertificate) and cert.serial in by_serial:
                    matched += 1
                    votes.update(by_serial[cert.serial])
        if not matched:
            continue
        # The votes are the oracle's; what they decide is the engine's one rule.
        chosen[index], note = decide_issuer(source, votes.most_common(), matched, issuers)
        notes.append(note)
    return chosen, notes
