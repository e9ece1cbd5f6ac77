"""Android OMA-DM log (Company Portal): the root and SCEP certificate state machines and jscep.

One enrollment is "Trying to enroll certificate request: ModelName=…;Hash=…" followed by the
jscep transport calls, the CA's CertRep and the NativeScepCertInstallStateMachine moving
CERT_ENROLLED → CERT_INSTALL_REQUESTED → CERT_INSTALLING → CERT_ACCESS_REQUESTED →
CERT_ACCESS_GRANTED. Transport and CertRep lines do not name the profile; they belong to the
enrollment last started in the same process.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from reconcile.evidence.attempt import Attempt
from reconcile.evidence.model import ParsedLog, Platform, Stage, find_profile
from reconcile.evidence.source import ANDROID_LINE, ParseOptions, open_text

_ROOT = re.compile(r"Root cert '(?P<id>[^']*)' state changed from (?P<old>\w+) to (?P<new>\w+)")
_SCEP = re.compile(r"SCEP cert '(?P<req>[^']*)' state changed from (?P<old>\w+) to (?P<new>\w+)")
_REQUESTS = re.compile(r"^There (?:are|is) \d+ requests?\b")
_ENROLL = re.compile(r"^Trying to enroll certificate request:\s*(?P<req>.+?)\s*$")
_SENDING = re.compile(r"^Sending (?P<what>.+?) to (?P<url>\S+)")
_RECEIVED = re.compile(
    r"^Received '(?P<code>\d{3})\s*(?P<reason>[^']*)' when sending (?P<what>.+?) to (?P<url>\S+)"
)
_CERTREP = re.compile(r"CertRep@\w+\[(?P<fields>[^\]]*)\]")
_OPERATION = re.compile(r"[?&]operation=(\w+)", re.IGNORECASE)
_FAILURE = re.compile(r"\bfail|exception\b", re.IGNORECASE)

# How far each state-machine state proves the enrollment got.
_STATE_STAGE = {
    "CERT_ENROLLED": Stage.CERT_ISSUED,
    "CERT_INSTALL_REQUESTED": Stage.CERT_ISSUED,
    "CERT_INSTALLING": Stage.CERT_ISSUED,
    "CERT_INSTALL_SUCCESS": Stage.CERT_INSTALLED,
    "CERT_INSTALLED": Stage.CERT_INSTALLED,
    "CERT_ACCESS_REQUESTED": Stage.CERT_INSTALLED,
    "CERT_ACCESS_GRANTED": Stage.ACCESS_GRANTED,
}
_CA_OPERATIONS = frozenset({"getcacert", "getcacaps", "getnextcacert"})


def _is_failure_state(state: str) -> bool:
    return any(word in state for word in ("FAIL", "ERROR", "DENIED", "REJECT"))


def _time(text: str, options: ParseOptions) -> datetime:
    return options.localize(datetime.fromisoformat(text))


def _operation(what: str, url: str) -> str:
    match = _OPERATION.search(url)
    if match:
        return match.group(1)
    return what.split("(", 1)[0].strip()


class _Parse:
    def __init__(self, path: Path, options: ParseOptions):
        self.path = path
        self.options = options
        self.attempts: list[Attempt] = []
        self.by_profile: dict[str, Attempt] = {}
        self.by_process: dict[str, Attempt] = {}
        self.roots: dict[str, Attempt] = {}

    def start(self, line: int, request: str, pid: str) -> Attempt:
        profile, profile_id = find_profile(request)
        attempt = Attempt(line, profile or request, profile_id)
        self.attempts.append(attempt)
        self.by_profile[attempt.profile or request] = attempt
        self.by_process[pid] = attempt
        return attempt

    def current(self, line: int, pid: str) -> Attempt:
        attempt = self.by_process.get(pid) or (self.attempts[-1] if self.attempts else None)
        if attempt is None:
            attempt = Attempt(line)
            self.attempts.append(attempt)
            self.by_process[pid] = attempt
        return attempt

    def handle(
        self, number: int, time: datetime, component: str, level: str, pid: str, msg: str
    ) -> bool:
        if match := _ROOT.search(msg):
            root = self.roots.setdefault(
                match["id"], Attempt(number, f"root certificate '{match['id']}'")
            )
            self._root(root, match["old"], match["new"], time, number)
            return True
        if match := _SCEP.search(msg):
            profile, _ = find_profile(match["req"])
            key = profile or match["req"]
            attempt = self.by_profile.get(key) or self.start(number, match["req"], pid)
            self._scep(attempt, match["old"], match["new"], time, number)
            return True
        if _REQUESTS.search(msg):
            return True
        if match := _ENROLL.search(msg):
            attempt = self.start(number, match["req"], pid)
            attempt.reach(Stage.ENROLLMENT_REQUESTED, time, "enrollment requested", number)
            return True
        if component.startswith("org.jscep.transport"):
            return self._transport(self.current(number, pid), msg, time, number)
        if match := _CERTREP.search(msg):
            self._certrep(self.current(number, pid), match["fields"], time, number)
            return True
        relevant = component.startswith("org.jscep") or ".certmgr." in component
        if relevant and (level == "ERROR" or _FAILURE.search(msg)):
            self.current(number, pid).fail(time, msg.strip()[:300], number)
            return True
        return False

    def _root(self, root: Attempt, old: str, new: str, time: datetime, number: int) -> None:
        text = f"root certificate {old} -> {new}"
        if _is_failure_state(new):
            root.fail(time, f"root certificate install failed ({new})", number)
        elif new == "CERT_INSTALL_SUCCESS":
            root.reach(Stage.ROOT_INSTALLED, time, text, number)
        else:
            root.note(time, text, number)

    def _scep(self, attempt: Attempt, old: str, new: str, time: datetime, number: int) -> None:
        text = f"SCEP certificate {old} -> {new}"
        if _is_failure_state(new):
            attempt.fail(time, f"SCEP certificate state {new} (from {old})", number)
            return
        stage = _STATE_STAGE.get(new) or _STATE_STAGE.get(old)
        if stage is None:
            attempt.note(time, text, number)
        else:
            attempt.reach(stage, time, text, number)

    def _transport(self, attempt: Attempt, msg: str, time: datetime, number: int) -> bool:
        if match := _RECEIVED.search(msg):
            operation = _operation(match["what"], match["url"])
            status = f"{match['code']} {match['reason']}".strip()
            pki = operation.casefold() == "pkioperation"
            if pki:
                attempt.reach(Stage.PKI_OPERATION_SENT, time, "PKIOperation sent", number)
            if match["code"] != "200":
                attempt.fail(time, f"HTTP {status} on {operation}", number)
            elif pki:
                attempt.note(time, f"PKIOperation answered {status}", number)
            elif operation.casefold() in _CA_OPERATIONS:
                attempt.reach(Stage.CA_CERT_FETCHED, time, f"{operation} answered {status}", number)
            else:
                attempt.note(time, f"{operation} answered {status}", number)
            return True
        if match := _SENDING.search(msg):
            operation = _operation(match["what"], match["url"])
            if operation.casefold() == "pkioperation":
                attempt.reach(Stage.PKI_OPERATION_SENT, time, "PKIOperation sent", number)
            else:
                attempt.note(time, f"sending {operation}", number)
            return True
        return False

    def _certrep(self, attempt: Attempt, fields: str, time: datetime, number: int) -> None:
        values = dict(part.split("=", 1) for part in fields.split(",") if "=" in part)
        status = values.get("pkiStatus", "").strip()
        fail_info = values.get("failInfo", "").strip()
        if status == "SUCCESS":
            attempt.reach(Stage.CERT_ISSUED, time, "CA answered CertRep pkiStatus=SUCCESS", number)
        elif status == "FAILURE":
            reason = fail_info if fail_info and fail_info != "<null>" else "not given"
            attempt.fail(
                time, f"CA refused the request: CertRep pkiStatus=FAILURE failInfo={reason}", number
            )
        else:
            attempt.note(time, f"CA answered CertRep pkiStatus={status or '?'}", number, keep=True)


def parse_android(path: Path, options: ParseOptions, sha256: str) -> ParsedLog:
    """Stream an OMA-DM log; lines in other formats or from other components are counted."""
    device = options.device_for(None, path)
    state = _Parse(path, options)
    units = skipped = 0
    with open_text(path) as text:
        for number, raw in enumerate(text, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            units += 1
            match = ANDROID_LINE.match(line)
            if match is None:
                skipped += 1
                continue
            try:
                time = _time(match["ts"], options)
            except ValueError:
                skipped += 1
                continue
            if not state.handle(
                number, time, match["component"], match["level"], match["pid"], match["msg"]
            ):
                skipped += 1
    source = str(path)
    records = [a.record(Platform.ANDROID, source, device) for a in state.attempts]
    for root in state.roots.values():
        if root.failures:
            records.append(root.record(Platform.ANDROID, source, device))
        elif not state.attempts:
            ended = (
                "root certificate installed; no SCEP enrollment in this log"
                if root.stage is Stage.ROOT_INSTALLED
                else None
            )
            records.append(root.record(Platform.ANDROID, source, device, ended))
    records.sort(key=lambda r: r.line)
    return ParsedLog(
        path=source,
        sha256=sha256,
        platform=Platform.ANDROID,
        records=tuple(records),
        units=units,
        skipped=skipped,
        unit="lines",
    )
