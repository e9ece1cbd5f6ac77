"""One next step per verdict: the action an admin takes, tied to where SCEP delivery stopped.

A finding is only useful if it says what to do. Intune's issuance state and, better, a device
log place the certificate on the SCEP workflow (challenge → request → CA → NDES → device →
Intune report), and each place has one owner: the Certificate Connector, NDES/IIS, the CA
template, the device, or the reporting path back to Intune.
"""

from __future__ import annotations

import dataclasses
import functools

from reconcile.evidence.model import EvidenceRecord, Outcome, Platform, Stage
from reconcile.model import RunResult, Status, Verdict, verdict_spool

GONE = "revoke: the device is gone from Intune"
REPORTING = "check Certificate Connector / NDES reporting (the certificate is on the device)"
SUPERSEDED = "nothing: superseded by a delivered renewal (revoke the old one if policy requires)"

_INFORMATIVE = {
    Status.DELIVERED: "nothing: Intune reports it installed",
    Status.WITHIN_GRACE: "wait: issued inside the grace window; re-run after it has passed",
    Status.REVOKED: "nothing: revoked at the CA",
    Status.EXPIRED: "nothing: expired; no action unless it was never replaced",
    Status.OUT_OF_SCOPE: "nothing: its template is not selected for this run",
    Status.ACCEPTED: "nothing: accepted as an exception",
    Status.INSTALLED_NOT_REPORTED: REPORTING,
    Status.SUPERSEDED: SUPERSEDED,
}

_CHALLENGE = (
    "check Certificate Connector / NDES challenge validation "
    "(connector event log, NDES policy module)"
)
_WAIT = (
    "sync the device and re-run after the grace window; if it stays {state}, check the device log"
)

# certificateIssuanceState values, compared case-insensitively.
_BY_STATE = {
    "challengeissuefailed": _CHALLENGE,
    "challengevalidationfailed": _CHALLENGE,
    "requestcreationfailed": (
        "device could not build the SCEP request: check key size, KSP and subject name "
        "in the profile against the device log"
    ),
    "requestsubmitfailed": (
        "device could not reach NDES: check the SCEP server URL (mscep.dll), App Proxy/WAP "
        "and the IIS logs"
    ),
    "issuefailed": (
        "check the CA: template permissions for the NDES service account and the template "
        "settings (CA Failed Requests)"
    ),
    "responseprocessingfailed": (
        "check NDES and the Certificate Connector: the device could not process the CA's "
        "response (RA certificates, chain)"
    ),
    "revoked": (
        "revoke at the CA: Intune shows it revoked but the CA does not "
        "(check the connector's revocation processing)"
    ),
    "deleted": "revoke at the CA if policy requires: Intune removed it from the device",
    "removedfromcollection": "revoke at the CA if policy requires: the device left the profile",
    "deletefailed": "check the device: removing the certificate failed; revoke it at the CA",
}
_PENDING = frozenset(
    {
        "unknown",
        "challengeissued",
        "challengevalidationsucceeded",
        "issuepending",
        "issued",
        "responsepending",
        "enrollmentsucceeded",
        "enrollmentnotneeded",
        "renewalrequested",
        "requested",
        "renewverified",
    }
)


def _platform(*descriptions: str | None) -> Platform | None:
    text = " ".join(t for t in descriptions if t).casefold()
    if "android" in text:
        return Platform.ANDROID
    if any(word in text for word in ("ios", "ipados", "iphone", "ipad")):
        return Platform.IOS
    if "windows" in text:
        return Platform.WINDOWS
    return None


def _device_log(platform: Platform | None) -> str:
    match platform:
        case Platform.ANDROID:
            return "the device's OMA-DM log"
        case Platform.IOS:
            return "the device's profiled debug log"
        case Platform.WINDOWS:
            return "the device's DeviceManagement-Enterprise-Diagnostics-Provider/Admin events"
    return "the device's OMA-DM log / event log"


def _install_failed(platform: Platform | None) -> str:
    if platform is Platform.WINDOWS:
        return (
            "device-side install failure: check the device's DeviceManagement event log "
            "(usually a Windows problem, not Intune)"
        )
    return f"device-side install failure: check {_device_log(platform)}"


def next_step(verdict: Verdict) -> str:
    """One short action for any verdict; findings get the action for their SCEP stage."""
    intune = verdict.intune
    return _next_step(
        verdict.status,
        intune.state if intune else None,
        verdict.device_gone,
        intune.platform if intune else None,
        verdict.device.operating_system if verdict.device else None,
    )


@functools.lru_cache(maxsize=4096)
def _next_step(
    status: Status,
    state: str | None,
    gone: bool,
    intune_platform: str | None,
    operating_system: str | None,
) -> str:
    """Cached: a nightly run asks this for every one of a million verdicts."""
    if status in (Status.NOT_REPORTED, Status.NOT_INSTALLED) and gone:
        return GONE
    platform = _platform(intune_platform, operating_system)
    if status is Status.NOT_REPORTED:
        return f"check {_device_log(platform)} for the enrollment and run `reconcile evidence add`"
    if status is Status.NOT_INSTALLED:
        state = state or "unknown"
        folded = state.casefold()
        if folded == "installfailed":
            return _install_failed(platform)
        if folded in _BY_STATE:
            return _BY_STATE[folded]
        if folded in _PENDING:
            return _WAIT.format(state=state)
        return (
            f"unfamiliar Intune state {state!r}: check {_device_log(platform)} "
            "and run `reconcile evidence add`"
        )
    return _INFORMATIVE[status]


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evidence_next_step(record: EvidenceRecord) -> str:
    """The action for an enrollment a device log shows stopped or failed, by stage reached."""
    detail = f" ({_short(record.detail)})" if record.detail else ""
    if record.outcome is Outcome.INSTALLED:
        if record.installed_at is None:
            return (
                "add the device log again with --log-date: an undated install proves no certificate"
            )
        return REPORTING
    if record.outcome is Outcome.IN_PROGRESS:
        where = record.stage.value if record.stage else "its start"
        return f"sync the device and add a newer log: the enrollment stopped at {where}"
    stage = record.stage
    if stage is None or stage is Stage.ROOT_INSTALLED:
        if record.profile and record.profile.startswith("root certificate"):
            return "fix the trusted root certificate profile: the root did not install" + detail
        return "check the device can reach NDES (SCEP server URL, App Proxy, IIS)" + detail
    if stage.rank <= Stage.CA_CERT_FETCHED.rank:
        return (
            "check the device can reach NDES (SCEP server URL, App Proxy, IIS logs) "
            "and the trusted root" + detail
        )
    if stage is Stage.PKI_OPERATION_SENT:
        return (
            "check Certificate Connector / NDES challenge validation and the CA template "
            "permissions" + detail
        )
    return _install_failed(record.platform) + detail


def with_next_steps(result: RunResult) -> RunResult:
    """Fill next_step on every verdict that has none (apply_evidence may already have set one).

    Verdicts built with a next_step are passed through untouched, so a join that sets it at
    construction makes this a scan; otherwise they are read once and spooled anew.
    """
    if all(v.next_step for v in result.verdicts):
        return result
    verdicts = verdict_spool(
        (
            v if v.next_step else dataclasses.replace(v, next_step=next_step(v))
            for v in result.verdicts
        ),
        copy_of=result.verdicts,
    )
    return dataclasses.replace(result, verdicts=verdicts)
