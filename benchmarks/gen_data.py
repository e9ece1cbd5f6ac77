"""Generate the bundled demo tenant and the large benchmark data sets.

Both sides come out the way the real tools write them: a ``certutil -view csv`` export (quoted
cells, ``EMPTY`` for nulls, ``-gmt`` dates, spaced hashes, trailing status lines) and a snapshot
directory of raw Graph JSON. Everything is seeded, so the same command writes the same bytes.

    python benchmarks/gen_data.py --demo                      # rewrite reconcile/demo/
    python benchmarks/gen_data.py --rows 1000000 --out DIR    # DIR/ca_export.csv, DIR/snapshot/
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from reconcile.ca.cloudpki import CAS as CLOUD_PKI_CAS
from reconcile.ca.cloudpki import LEAVES as CLOUD_PKI_LEAVES
from reconcile.ca.cloudpki import SOURCE as CLOUD_PKI
from reconcile.demo import (
    DEMO_AS_OF,
    DEMO_CLOUD_PKI_CA,
    DEMO_DIR,
    DEMO_ISSUER,
    DEMO_TEMPLATES,
    DEMO_TENANT_ID,
)
from reconcile.emulator.connectors import TYPES
from reconcile.emulator.connectors import generated as emulated_connectors
from reconcile.intune.connectors import FILE as CONNECTORS_FILE
from reconcile.intune.connectors import TYPE_KEY
from reconcile.intune.fetch import endpoints_used, sources_of
from reconcile.intune.options import SourceChoice
from reconcile.intune.records import PROFILE_ID_KEY, PROFILE_NAME_KEY, PROFILE_TYPE_KEY
from reconcile.intune.snapshot import FORMAT, METADATA, VERSION, SnapshotWriter

CERTUTIL_HEADER = (
    "Issued Request ID",
    "Serial Number",
    "Certificate Hash",
    "Certificate Effective Date",
    "Certificate Expiration Date",
    "Certificate Template",
    "Requester Name",
    "Issued Common Name",
    "Issued Distinguished Name",
    "Revocation Date",
    "Request Disposition",
)
ISSUED, REVOKED = "20 -- Issued", "21 -- Revoked"
ISSUER_DN = f"CN={DEMO_ISSUER}, DC=corp, DC=contoso"
FOREIGN_ISSUER_DN = "CN=Fabrikam Partner CA, O=Fabrikam"
CA_CONFIG = f"ca01.corp.contoso.com\\{DEMO_ISSUER}"
SCEP_REQUESTER = "CONTOSO\\svc-ndes"
PKCS_REQUESTER = "CONTOSO\\INTUNE-CONN$"
# MS-WCCE serial layout: high byte, request id, 8 random bytes, CA cert index, request id.
HIGH_SERIAL_BYTE = 0x61
CA_INDEX = 0
OID_PREFIX = "1.3.6.1.4.1.311.21.8.4521873.9174215.11838394.2917640.12836427.177"
FETCHED_AT = DEMO_AS_OF - timedelta(minutes=20)


def ca_serial(request_id: int, random_part: int) -> str:
    """AD CS spelling: 38 lowercase hex digits that encode the request id twice."""
    return f"{HIGH_SERIAL_BYTE:02x}{request_id:08x}{random_part:016x}{CA_INDEX:04x}{request_id:08x}"


def certutil_date(value: datetime) -> str:
    """``certutil -view -gmt`` in en-US: ``4/25/2027 7:36 PM GMT`` (no seconds)."""
    hour = value.hour % 12 or 12
    half = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d} {half} GMT"


def graph_time(value: datetime, ticks: int = 0) -> str:
    """Graph's DateTimeOffset: seven fractional digits and a Z."""
    return f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.{ticks % 10_000_000:07d}Z"


def certutil_cell(value: str | None) -> str:
    return "EMPTY" if value is None else '"' + value.replace('"', '""') + '"'


def certutil_line(cells: tuple[str | None, ...]) -> str:
    return ",".join(certutil_cell(c) for c in cells) + "\r\n"


def certutil_trailer(rows: int) -> str:
    return f"\r\n{rows} Rows\r\nCertUtil: -view command completed successfully.\r\n"


def intune_serial(serial: str, style: str) -> str | None:
    """The same serial as Intune or a connector might spell it."""
    upper = serial.upper()
    pairs = [serial[i : i + 2] for i in range(0, len(serial), 2)]
    spellings = {
        "ca": serial,
        "upper": upper,
        "lead00": "00" + upper,
        "colons": ":".join(pairs).upper(),
        "spaces": " ".join(pairs),
        "thumb": None,
    }
    return spellings[style]


def guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --- shapes of the Graph objects (one place, used by the demo and by the benchmark) -------------


@dataclass(frozen=True)
class Template:
    oid: str | None
    name: str

    @property
    def cell(self) -> str:
        """Certificate Template as certutil prints it: V2+ "<OID> Name", V1 only the name."""
        return f"{self.oid} {self.name}" if self.oid else self.name


@dataclass(frozen=True)
class Profile:
    key: str
    odata_type: str
    display_name: str
    template: Template
    requester: str
    platform: str
    subject_format: str
    issuer_dn: str = ISSUER_DN
    id: str = ""


def profile_object(profile: Profile) -> dict[str, Any]:
    """A deviceConfiguration as the fetcher selects it (Graph adds @odata.type on its own)."""
    return {
        "@odata.type": f"#microsoft.graph.{profile.odata_type}",
        "id": profile.id,
        "displayName": profile.display_name,
    }


def state_object(
    *,
    record_id: str,
    profile: Profile,
    state: str,
    device_name: str,
    user_name: str,
    issuer: str | None,
    serial: str | None,
    thumbprint: str,
    issued: str,
    expires: str,
    changed: str,
    error_code: int,
) -> dict[str, Any]:
    """A managedDeviceCertificateState with the fetcher's $select, plus its profile annotations."""
    return {
        PROFILE_ID_KEY: profile.id,
        PROFILE_NAME_KEY: profile.display_name,
        PROFILE_TYPE_KEY: profile.odata_type,
        "id": record_id,
        "devicePlatform": profile.platform,
        "certificateIssuanceState": state,
        "certificateProfileDisplayName": profile.display_name,
        "deviceDisplayName": device_name,
        "userDisplayName": user_name,
        "certificateSerialNumber": serial,
        "certificateThumbprint": thumbprint,
        "certificateIssuer": issuer,
        "certificateIssuanceDateTime": issued,
        "certificateExpirationDateTime": expires,
        "certificateLastIssuanceStateChangedDateTime": changed,
        "lastCertificateStateChangeDateTime": changed,
        "certificateErrorCode": error_code,
    }


def device_object(
    *,
    device_id: str,
    name: str,
    upn: str,
    os: str,
    aad_id: str,
    serial: str,
    last_sync: str,
) -> dict[str, Any]:
    """A managedDevice with the fetcher's $select."""
    return {
        "id": device_id,
        "deviceName": name,
        "azureADDeviceId": aad_id,
        "serialNumber": serial,
        "userPrincipalName": upn,
        "operatingSystem": os,
        "lastSyncDateTime": last_sync,
    }


def snapshot_metadata(intune_source: str, ca_sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """What fetch_snapshot records, for a fetch with certificate auth in the global cloud."""
    source = SourceChoice(intune_source)
    extra = {"ca_sources": list(ca_sources)} if ca_sources else {}
    return {
        "tenant_id": DEMO_TENANT_ID,
        "cloud": "global",
        "graph_url": "https://graph.microsoft.com",
        "authority_host": "https://login.microsoftonline.com",
        "auth_method": "certificate",
        "endpoints": endpoints_used(source, ca_sources),
        "fetched_at": FETCHED_AT.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "intune_source": intune_source,
        "sources": [str(s) for s in sources_of(source)],
        **extra,
    }


# --- the demo tenant ----------------------------------------------------------------------------

T_WIN = Template(DEMO_TEMPLATES[0], "ContosoIntuneSCEPWindows")
T_IOS = Template(DEMO_TEMPLATES[1], "ContosoIntuneSCEPiOS")
T_AND = Template(f"{OID_PREFIX}.3071.103", DEMO_TEMPLATES[2])
T_VPN = Template(f"{OID_PREFIX}.3071.110", "ContosoVPNUser")
T_MACHINE = Template(None, "Machine")
T_WEB = Template(None, "WebServer")

DEMO_PROFILES = (
    Profile(
        "win",
        "windows81SCEPCertificateProfile",
        "Contoso Windows Device SCEP",
        T_WIN,
        SCEP_REQUESTER,
        "windows10AndLater",
        "CN={{DeviceName}}",
    ),
    Profile(
        "ios",
        "iosScepCertificateProfile",
        "Contoso iOS User SCEP",
        T_IOS,
        SCEP_REQUESTER,
        "iOS",
        "CN={{UserPrincipalName}},OU=Mobile,O=Contoso",
    ),
    Profile(
        "and",
        "androidWorkProfilePkcsCertificateProfile",
        "Contoso Android Work Profile PKCS",
        T_AND,
        PKCS_REQUESTER,
        "androidWorkProfile",
        "CN={{DeviceName}},O=Contoso",
    ),
    # A partner CA's profile: its records must neither match Contoso's export nor be
    # reported as unknown to it.
    Profile(
        "fab",
        "windows81SCEPCertificateProfile",
        "Fabrikam Partner Wi-Fi SCEP",
        Template(None, "FabrikamWiFi"),
        "",
        "windows10AndLater",
        "CN={{DeviceName}}",
        issuer_dn=FOREIGN_ISSUER_DN,
    ),
)

HOSTILE_FORMULA = '=HYPERLINK("http://evil.example","x")'
HOSTILE_AT = "@SUM(1+9)*cmd|' /C calc'!A0"
HOSTILE_DASH = "-2+3+cmd|' /C calc'!A0"


@dataclass(frozen=True)
class DemoDevice:
    key: str
    name: str
    upn: str
    user_name: str
    platform: str
    managed: bool = True


DEMO_DEVICES = (
    DemoDevice("D1", "CONTOSO-LT-0101", "adele.vance@contoso.com", "Adele Vance", "win"),
    DemoDevice("D2", "CONTOSO-LT-0102", "alex.wilber@contoso.com", "Alex Wilber", "win"),
    DemoDevice("D3", "CONTOSO-LT-0103", "diego.siciliani@contoso.com", "Diego Siciliani", "win"),
    DemoDevice("D4", "CONTOSO-LT-0104", "grady.archie@contoso.com", "Grady Archie", "win"),
    DemoDevice("D5", "CONTOSO-DT-0201", "isaiah.langer@contoso.com", "Isaiah Langer", "win"),
    DemoDevice("D6", "CONTOSO-DT-0202", "johanna.lorenz@contoso.com", "Johanna Lorenz", "win"),
    DemoDevice("D7", HOSTILE_FORMULA, "lynne.robbins@contoso.com", "Lynne Robbins", "win"),
    DemoDevice(
        "D9", "CONTOSO-LT-0099", "henrietta.mueller@contoso.com", "Henrietta Mueller", "win", False
    ),
    DemoDevice("I1", "LeeGu_iPhone", "lee.gu@contoso.com", "Lee Gu", "ios"),
    DemoDevice("I2", "MeganB_iPhone", "megan.bowen@contoso.com", "Megan Bowen", "ios"),
    DemoDevice("I3", "NestorW_iPad", "nestor.wilke@contoso.com", "Nestor Wilke", "ios"),
    DemoDevice("I4", HOSTILE_DASH, "lidia.holloway@contoso.com", "Lidia Holloway", "ios"),
    DemoDevice("A1", "ZoëB_Pixel7", "zoe.brenner@contoso.com", "Zoë Brenner", "and"),
    DemoDevice("A2", "PradeepG_GalaxyS23", "pradeep.gupta@contoso.com", "Pradeep Gupta", "and"),
    DemoDevice("A3", HOSTILE_AT, "miriam.graham@contoso.com", "Miriam Graham", "and"),
    DemoDevice("A4", "JoniS_Pixel8", "joni.sherman@contoso.com", "Joni Sherman", "and"),
)

_OS = {"win": "Windows", "ios": "iOS", "and": "Android"}


@dataclass(frozen=True)
class Seen:
    """What Intune says about one CA certificate."""

    state: str
    style: str = "upper"
    issuer: str | None = ISSUER_DN
    error_code: int = 0
    report: bool = False


@dataclass(frozen=True)
class DemoCert:
    """One CA row of the demo and the status the classification rules give it."""

    issued: datetime
    expect: str
    why: str
    device: str | None = None
    cn: str | None = None
    template: Template | None = None
    requester: str | None = None
    days: int = 365
    revoked: datetime | None = None
    seen: Seen | None = None


@dataclass(frozen=True)
class IntuneOnly:
    """An Intune record without a CA row: unknown to the CA, or from a CA not covered."""

    device: str
    profile: str
    issued: datetime
    expect: str
    why: str
    same_serial_as: tuple[str, str] | None = None  # (device, expected) of a CA row


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


INSTALL_FAILED = -2146885628  # 0x80092004 CRYPT_E_NOT_FOUND, as an Int32
DEMO_CERTS = (
    # CONTOSO-LT-0101: a year of history, a renewal too fresh for Intune to have reported.
    DemoCert(_t("2025-09-02 09:14"), "expired", "expired; Intune still lists it installed",
             "D1", seen=Seen("installed")),
    DemoCert(_t("2026-08-28 10:05"), "delivered", "installed; Intune serial in CA spelling",
             "D1", seen=Seen("installed", "ca", report=True)),
    DemoCert(_t("2026-11-19 23:00"), "within_grace", "issued 3 h before as-of, no record yet",
             "D1"),
    DemoCert(_t("2025-03-03 08:30"), "out_of_scope", "Machine template from AD autoenrollment",
             cn="CONTOSO-LT-0101.corp.contoso.com", template=T_MACHINE,
             requester="CONTOSO\\CONTOSO-LT-0101$"),
    # CONTOSO-LT-0102: the SCEP request failed to install, the renewal a day later worked.
    DemoCert(_t("2025-06-10 08:00"), "expired", "last year's certificate", "D2"),
    DemoCert(_t("2026-06-01 14:22"), "superseded",
             "installFailed; the next day's renewal for the same device and profile is installed",
             "D2", seen=Seen("installFailed", "upper", error_code=INSTALL_FAILED)),
    DemoCert(_t("2026-06-02 09:41"), "delivered", "installed; Intune serial with colons",
             "D2", seen=Seen("installed", "colons", report=True)),
    DemoCert(_t("2025-06-11 07:45"), "out_of_scope", "Machine template from AD autoenrollment",
             cn="CONTOSO-LT-0102.corp.contoso.com", template=T_MACHINE,
             requester="CONTOSO\\CONTOSO-LT-0102$"),
    # CONTOSO-LT-0103: nothing ever delivered. The partner CA happens to report the same serial
    # number as installed: issuer-aware matching must not take it.
    DemoCert(_t("2025-09-14 16:20"), "expired", "last year's certificate, never reported", "D3"),
    DemoCert(_t("2026-09-15 11:30"), "not_installed", "Intune state responsePending",
             "D3", seen=Seen("responsePending", "lead00")),
    DemoCert(_t("2026-10-10 16:45"), "not_reported",
             "only a Fabrikam Partner CA record carries this serial number", "D3"),
    # CONTOSO-LT-0104: revoked (key compromise) although Intune says installed, then re-issued.
    DemoCert(_t("2026-02-03 10:10"), "revoked", "revoked by the CA; Intune still says installed",
             "D4", revoked=_t("2026-02-20 15:00"), seen=Seen("installed", "ca")),
    DemoCert(_t("2026-02-20 15:30"), "delivered", "installed; Intune serial with a leading 00",
             "D4", seen=Seen("installed", "lead00", report=True)),
    # CONTOSO-DT-0201: Intune reports the current certificate by thumbprint only.
    DemoCert(_t("2025-07-15 13:00"), "expired", "last year's certificate", "D5"),
    DemoCert(_t("2026-07-14 13:00"), "delivered", "installed; Intune record has no serial",
             "D5", seen=Seen("installed", "thumb")),
    DemoCert(_t("2025-07-16 10:00"), "out_of_scope", "Machine template from AD autoenrollment",
             cn="CONTOSO-DT-0201.corp.contoso.com", template=T_MACHINE,
             requester="CONTOSO\\CONTOSO-DT-0201$"),
    # CONTOSO-DT-0202: two valid certificates overlap during renewal, both installed.
    DemoCert(_t("2024-11-26 09:00"), "expired", "certificate from two years ago", "D6"),
    DemoCert(_t("2025-11-25 09:00"), "delivered", "installed; Intune serial with spaces",
             "D6", seen=Seen("installed", "spaces", report=True)),
    DemoCert(_t("2026-11-19 21:00"), "delivered",
             "issued 5 h before as-of but already installed: delivered beats within_grace",
             "D6", seen=Seen("installed", "upper")),
    # The device a user renamed to a spreadsheet formula.
    DemoCert(_t("2026-10-02 12:00"), "not_installed", "installFailed on a hostile device name",
             "D7", seen=Seen("installFailed", "upper", error_code=INSTALL_FAILED)),
    # CONTOSO-LT-0099: retired, gone from Intune's managed devices; its certificates still live.
    DemoCert(_t("2025-03-01 10:00"), "expired", "retired device's old certificate", "D9"),
    DemoCert(_t("2026-04-01 09:00"), "not_installed",
             "installFailed; the device is no longer managed: revocation candidate",
             "D9", seen=Seen("installFailed", "upper", error_code=INSTALL_FAILED)),
    DemoCert(_t("2026-05-01 09:00"), "not_reported",
             "never reported; the device is no longer managed", "D9"),
    # LeeGu_iPhone: revoked and also expired (revoked wins), then last year's, then current.
    DemoCert(_t("2025-06-01 10:00"), "revoked", "revoked and expired: revoked is checked first",
             "I1", revoked=_t("2025-08-01 10:30")),
    DemoCert(_t("2025-08-01 11:00"), "expired", "last year's certificate", "I1"),
    DemoCert(_t("2026-07-30 10:00"), "delivered", "installed", "I1",
             seen=Seen("installed", "upper")),
    # MeganB_iPhone: the first request was never reported; the renewal linked by CN + template.
    DemoCert(_t("2026-03-10 09:00"), "superseded",
             "no Intune record; a newer certificate for the same CN and template is installed",
             "I2"),
    DemoCert(_t("2026-03-11 09:05"), "delivered",
             "installed; Intune spells the issuer DN in upper case", "I2",
             seen=Seen("installed", "upper", issuer=ISSUER_DN.upper(), report=True)),
    # NestorW_iPad: one expired certificate Intune still lists, one current.
    DemoCert(_t("2025-05-21 08:00"), "expired", "expired; Intune still lists it installed",
             "I3", seen=Seen("installed", "upper")),
    DemoCert(_t("2026-05-20 08:00"), "delivered", "installed; Intune serial with a leading 00",
             "I3", seen=Seen("installed", "lead00")),
    # An iPhone renamed to a formula: a state Intune has not documented yet, then silence.
    DemoCert(_t("2026-09-01 15:00"), "not_installed",
             "Intune state someFutureState (unknown values never count as delivered)",
             "I4", seen=Seen("someFutureState", "upper")),
    DemoCert(_t("2026-11-18 19:00"), "not_reported",
             "no Intune record 31 h after issuance (grace is 24 h)", "I4"),
    # ZoëB_Pixel7: a failed install that expired, a revoked one, the current one.
    DemoCert(_t("2025-10-01 09:00"), "expired", "expired; Intune lists it installFailed",
             "A1", seen=Seen("installFailed", "upper", error_code=INSTALL_FAILED)),
    DemoCert(_t("2026-01-15 09:00"), "revoked", "revoked (superseded) by the CA", "A1",
             revoked=_t("2026-01-16 08:00")),
    DemoCert(_t("2026-01-16 10:00"), "delivered", "installed", "A1",
             seen=Seen("installed", "upper", report=True)),
    # PradeepG_GalaxyS23: stuck in "issued", renewed four days later and installed.
    DemoCert(_t("2026-08-01 10:00"), "superseded",
             "Intune state issued; the renewal for the same device and profile is installed",
             "A2", seen=Seen("issued", "upper")),
    DemoCert(_t("2026-08-05 10:00"), "delivered",
             "installed; Intune record names no issuer (matched by serial alone)", "A2",
             seen=Seen("installed", "upper", issuer=None)),
    # A device named like a formula, stuck in "issued" 30 h after issuance: past the grace window.
    DemoCert(_t("2026-11-18 20:00"), "not_installed",
             "Intune state issued 30 h after issuance (grace is 24 h)", "A3",
             seen=Seen("issued", "upper")),
    # JoniS_Pixel8: current certificate by thumbprint, expiring in 8 days (a 230-day profile);
    # the renewal is still in flight, so it is in the expiring view.
    DemoCert(_t("2026-04-12 10:00"), "delivered",
             "installed; Intune record has no serial; expires in 8 days, renewal not delivered",
             "A4", days=230, seen=Seen("installed", "thumb")),
    DemoCert(_t("2026-11-19 16:00"), "within_grace",
             "issued 10 h before as-of; Intune state issued", "A4", seen=Seen("issued", "upper")),
    # Templates nobody asked about.
    DemoCert(_t("2026-01-10 11:00"), "out_of_scope", "Machine template, file server",
             cn="CONTOSO-SRV-FS01.corp.contoso.com", template=T_MACHINE,
             requester="CONTOSO\\CONTOSO-SRV-FS01$"),
    DemoCert(_t("2024-05-01 11:00"), "out_of_scope", "Machine template, expired",
             cn="CONTOSO-SRV-SQL01.corp.contoso.com", template=T_MACHINE,
             requester="CONTOSO\\CONTOSO-SRV-SQL01$"),
    DemoCert(_t("2026-03-01 12:00"), "out_of_scope",
             "WebServer template, revoked: out_of_scope is checked first",
             cn="intranet.contoso.com", template=T_WEB, requester="CONTOSO\\webadmin",
             days=730, revoked=_t("2026-06-01 12:00")),
    DemoCert(_t("2026-09-09 14:00"), "out_of_scope", "V2 template not selected (VPN user)",
             cn="adele.vance@contoso.com", template=T_VPN, requester="CONTOSO\\adele.vance"),
)  # fmt: skip

DEMO_INTUNE_ONLY = (
    IntuneOnly("D4", "win", _t("2026-05-05 09:00"), "unknown_to_ca",
               "installed, issued by Contoso Issuing CA 1, absent from the export"),
    IntuneOnly("I3", "ios", _t("2026-11-01 08:00"), "unknown_to_ca",
               "installed, issued by Contoso Issuing CA 1, absent from the export"),
    IntuneOnly("D3", "fab", _t("2026-10-10 16:50"), "foreign_issuer",
               "Fabrikam Partner CA; same serial number as a Contoso certificate",
               same_serial_as=("D3", "not_reported")),
    IntuneOnly("D5", "fab", _t("2026-06-01 08:00"), "foreign_issuer",
               "Fabrikam Partner CA; the export does not cover that issuer"),
)  # fmt: skip


def _distinguished_name(cn: str, profile: Profile | None) -> str:
    """Issued Distinguished Name as Windows prints it (quoted where the CN needs it)."""
    value = f'"{cn.replace(chr(34), chr(34) * 2)}"' if any(c in cn for c in ',"=+') else cn
    if profile is None or profile.key == "win":
        return f"CN={value}"
    if profile.key == "ios":
        return f"CN={value}, OU=Mobile, O=Contoso"
    return f"CN={value}, O=Contoso"


@dataclass(frozen=True)
class _DemoRow:
    spec: DemoCert
    request_id: int
    serial: str
    thumbprint: str
    cn: str
    template: Template
    requester: str
    profile: Profile | None
    device: DemoDevice | None


def build_demo(out: Path) -> dict[str, Any]:
    """Write ca_export.csv, snapshot/ and manifest.json under ``out``; returns the manifest."""
    rng = random.Random(20261120)
    profiles = {p.key: Profile(**{**p.__dict__, "id": guid(rng)}) for p in DEMO_PROFILES}
    devices = {d.key: d for d in DEMO_DEVICES}
    device_ids = {d.key: guid(rng) for d in DEMO_DEVICES}

    order = sorted(range(len(DEMO_CERTS)), key=lambda i: DEMO_CERTS[i].issued)
    rows: dict[int, _DemoRow] = {}
    request_id = 1040
    for index in order:
        spec = DEMO_CERTS[index]
        request_id += rng.randint(1, 4)
        device = devices[spec.device] if spec.device else None
        profile = profiles[device.platform] if device else None
        if device is not None and profile is not None:
            cn = device.upn if profile.key == "ios" else device.name
            template, requester = profile.template, profile.requester
        else:
            assert spec.cn and spec.template and spec.requester
            cn, template, requester = spec.cn, spec.template, spec.requester
        rows[index] = _DemoRow(
            spec=spec,
            request_id=request_id,
            serial=ca_serial(request_id, rng.getrandbits(64)),
            thumbprint=rng.randbytes(20).hex(),
            cn=cn,
            template=template,
            requester=requester,
            profile=profile,
            device=device,
        )

    out.mkdir(parents=True, exist_ok=True)
    lines = [certutil_line(CERTUTIL_HEADER)]
    for index in order:
        row = rows[index]
        spec = row.spec
        lines.append(
            certutil_line(
                (
                    str(row.request_id),
                    row.serial,
                    bytes.fromhex(row.thumbprint).hex(" "),
                    certutil_date(spec.issued),
                    certutil_date(spec.issued + timedelta(days=spec.days)),
                    row.template.cell,
                    row.requester,
                    row.cn,
                    _distinguished_name(row.cn, row.profile),
                    certutil_date(spec.revoked) if spec.revoked else None,
                    REVOKED if spec.revoked else ISSUED,
                )
            )
        )
    text = "".join(lines) + certutil_trailer(len(order))
    # Windows PowerShell 5.1 redirection: UTF-16LE with a byte order mark.
    (out / "ca_export.csv").write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))

    states: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    for index in order:
        row = rows[index]
        seen = row.spec.seen
        if seen is None or row.device is None or row.profile is None:
            continue
        states.append(
            _demo_state(rng, row.profile, row.device, seen, row.spec.issued, row.spec.days,
                        intune_serial(row.serial, seen.style), row.thumbprint.upper())
        )  # fmt: skip
        if seen.report:
            reports.append(_report_row(rng, row, device_ids[row.device.key]))
    intune_only: list[dict[str, Any]] = []
    for extra in DEMO_INTUNE_ONLY:
        profile = profiles[extra.profile]
        if extra.same_serial_as is not None:
            (twin,) = (
                r for r in rows.values() if (r.spec.device, r.spec.expect) == extra.same_serial_as
            )
            serial = twin.serial.upper()
        elif profile.key == "fab":
            serial = rng.randbytes(16).hex().upper()
        else:
            serial = ca_serial(_unused_request_id(rows, extra.issued), rng.getrandbits(64)).upper()
        seen = Seen("installed", issuer=profile.issuer_dn)
        states.append(
            _demo_state(rng, profile, devices[extra.device], seen, extra.issued, 365, serial,
                        rng.randbytes(20).hex().upper())
        )  # fmt: skip
        intune_only.append(
            {
                "serial": serial,
                "issuer": profile.issuer_dn,
                "device": devices[extra.device].name,
                "profile": profile.display_name,
                "expected": extra.expect,
                "why": extra.why,
            }
        )

    cloud_pki = _demo_cloud_pki({key: device_ids[key] for key in device_ids})
    states += cloud_pki.states
    meta = snapshot_metadata("both", (CLOUD_PKI,))
    with SnapshotWriter(out / "snapshot", meta) as writer:
        for profile in (*profiles.values(), cloud_pki.profile):
            writer.write("profiles", profile_object(profile))
        # The fetcher reads one profile at a time, so records arrive grouped by profile.
        for profile in (*profiles.values(), cloud_pki.profile):
            for record in states:
                if record["@reconcile.profileId"] == profile.id:
                    writer.write("certificate_states", record)
        for report in reports:
            writer.write("report_rows", report)
        for device in DEMO_DEVICES:
            if device.managed:
                writer.write("managed_devices", _demo_device(rng, device, device_ids[device.key]))
        writer.open_collection(CLOUD_PKI_CAS)
        for ca in cloud_pki.cas:
            writer.write(CLOUD_PKI_CAS, ca)
        writer.open_collection(CLOUD_PKI_LEAVES)
        for leaf in cloud_pki.leaves:
            writer.write(CLOUD_PKI_LEAVES, leaf)
        connectors = [
            {**obj, TYPE_KEY: TYPES[route]}
            for route, objects in emulated_connectors(DEMO_AS_OF, stale=False).items()
            for obj in objects
        ]
        writer.add_file(CONNECTORS_FILE, connectors, {"count": len(connectors), "warnings": []})
        writer.commit()

    manifest = _manifest([rows[i] for i in order], intune_only)
    manifest["cloud_pki"] = cloud_pki.manifest
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


# --- the demo tenant's Microsoft Cloud PKI (an issuing CA under a root, beside AD CS) -----------

CLOUD_PKI_ROOT = "Contoso Cloud Root CA"
CLOUD_PKI_CA = DEMO_CLOUD_PKI_CA
CLOUD_PKI_DN = f"CN={CLOUD_PKI_CA}, O=Contoso, C=US"
T_CLOUD = Template(None, CLOUD_PKI_CA)


@dataclass(frozen=True)
class CloudLeaf:
    """One Cloud PKI leaf of the demo: its Graph status and what reconcile must make of it."""

    device: str
    status: str
    issued: datetime
    seen: str | None
    expect: str
    why: str
    revoked: datetime | None = None
    days: int = 365


DEMO_CLOUD_LEAVES = (
    CloudLeaf("D1", "active", _t("2026-11-02 08:12"), "installed", "delivered",
              "active and installed"),
    CloudLeaf("D1", "active", _t("2026-10-01 08:05"), None, "superseded",
              "no record, and the same managed device has a newer delivered leaf of this CA"),
    CloudLeaf("D3", "active", _t("2026-11-03 09:40"), "installFailed", "not_installed",
              "Intune reports installFailed"),
    CloudLeaf("D9", "active", _t("2026-11-04 07:55"), None, "not_reported",
              "no record; its managed device is retired (revocation candidate)"),
    CloudLeaf("D4", "revoked", _t("2026-10-20 11:00"), "installed", "revoked",
              "revoked with a revocationDateTime although Intune still says installed",
              revoked=_t("2026-11-12 15:30")),
    CloudLeaf("D6", "revoked", _t("2026-10-21 11:00"), None, "revoked",
              "status revoked without a revocationDateTime: revoked at the latest at the fetch"),
    CloudLeaf("D5", "expired", _t("2025-11-01 10:00"), "installed", "expired",
              "last year's leaf, still listed installed", days=364),
    CloudLeaf("D6", "unknown", _t("2026-11-05 12:00"), "installed", "delivered",
              "status unknown is not revoked"),
    CloudLeaf("D2", "unknownFutureValue", _t("2026-11-19 20:30"), None, "within_grace",
              "status unknownFutureValue is not revoked; issued 5.5 h before as-of"),
)  # fmt: skip


@dataclass(frozen=True)
class DemoCloudPki:
    profile: Profile
    cas: list[dict[str, Any]]
    leaves: list[dict[str, Any]]
    states: list[dict[str, Any]]
    manifest: dict[str, Any]


def _cloud_ca(rng: random.Random, ca_id: str, name: str, root_id: str | None) -> dict[str, Any]:
    """A cloudCertificationAuthority in the documented shape (Graph beta resource page)."""
    base = f"https://cloudpki.contoso.example/{ca_id}"
    return {
        "@odata.type": "#microsoft.graph.cloudCertificationAuthority",
        "id": ca_id,
        "displayName": name,
        "description": f"{name} (demo)",
        "scepServerUrl": None if root_id is None else f"{base}/scep",
        "certificateRevocationListUrl": f"{base}/crl",
        "certificateDownloadUrl": f"{base}/cert",
        "certificationAuthorityIssuerUri": None if root_id is None else f"{base}/issuer",
        "ocspResponderUri": "https://cloudpki.contoso.example/ocsp",
        "certificationAuthorityStatus": "active",
        "eTag": "1",
        "lastModifiedDateTime": "2026-01-12T09:00:00Z",
        "roleScopeTagIds": ["0"],
        "createdDateTime": "2026-01-12T09:00:00Z",
        "certificationAuthorityIssuerId": root_id,
        "issuerCommonName": CLOUD_PKI_ROOT,
        "cloudCertificationAuthorityType": (
            "rootCertificationAuthority" if root_id is None else "issuingCertificationAuthority"
        ),
        "validityPeriodInYears": 10 if root_id is None else 5,
        "validityStartDateTime": "2026-01-12T09:00:00Z",
        "validityEndDateTime": "2031-01-12T09:00:00Z",
        "organizationName": "Contoso",
        "organizationUnit": None,
        "countryName": "US",
        "stateName": None,
        "localityName": None,
        "certificateKeySize": "rsa4096",
        "cloudCertificationAuthorityHashingAlgorithm": "sha256",
        "thumbprint": rng.randbytes(20).hex().upper(),
        "serialNumber": rng.randbytes(16).hex().upper(),
        "subjectName": f"CN={name}, O=Contoso, C=US",
        "commonName": name,
        "certificateSigningRequest": None,
        "extendedKeyUsages": [
            {"name": "Client Authentication", "objectIdentifier": "1.3.6.1.5.5.7.3.2"}
        ],
        "versionNumber": 1,
        "rootCertificateCommonName": CLOUD_PKI_ROOT,
        "keyPlatform": "hardwareSecurityModule",
    }


def _demo_cloud_pki(device_ids: dict[str, str]) -> DemoCloudPki:
    """Its own seed, so the AD CS half of the demo is byte-identical with or without it."""
    rng = random.Random(15_2026)
    root_id, ca_id = guid(rng), guid(rng)
    profile = Profile("cloud", "windows81SCEPCertificateProfile", "Contoso Windows Cloud PKI SCEP",
                      T_CLOUD, "", "windows10AndLater", "CN={{DeviceName}}",
                      issuer_dn=CLOUD_PKI_DN, id=guid(rng))  # fmt: skip
    cas = [
        _cloud_ca(rng, root_id, CLOUD_PKI_ROOT, None),
        _cloud_ca(rng, ca_id, CLOUD_PKI_CA, root_id),
    ]
    devices = {d.key: d for d in DEMO_DEVICES}
    leaves, states, expected = [], [], []
    for spec in sorted(DEMO_CLOUD_LEAVES, key=lambda leaf: leaf.issued):
        device = devices[spec.device]
        serial, thumbprint, leaf_id = (
            rng.randbytes(16).hex().upper(),
            rng.randbytes(20).hex().upper(),
            guid(rng),
        )
        leaves.append(
            {
                "@odata.type": "#microsoft.graph.cloudCertificationAuthorityLeafCertificate",
                "id": leaf_id,
                "subjectName": f"CN={device.name}",
                "issuerId": ca_id,
                "issuerName": CLOUD_PKI_CA,
                "certificateStatus": spec.status,
                "validityStartDateTime": graph_time(spec.issued),
                "validityEndDateTime": graph_time(spec.issued + timedelta(days=spec.days)),
                "thumbprint": thumbprint,
                "serialNumber": serial,
                "revocationDateTime": graph_time(spec.revoked) if spec.revoked else None,
                "deviceName": device.name,
                "userPrincipalName": device.upn,
                "deviceId": device_ids[spec.device],
                "userId": guid(rng),
                "devicePlatform": "Windows10AndLater",
            }
        )
        if spec.seen is not None:
            seen = Seen(spec.seen, issuer=CLOUD_PKI_DN)
            states.append(_demo_state(rng, profile, device, seen, spec.issued, spec.days, serial,
                                      thumbprint))  # fmt: skip
        expected.append(
            {
                "serial": serial,
                "leaf_id": leaf_id,
                "device": device.name,
                "device_managed": device.managed,
                "status": spec.status,
                "intune_state": spec.seen,
                "expected": spec.expect,
                "why": spec.why,
            }
        )
    counts = Counter(item["expected"] for item in expected)
    manifest = {
        "ca": CLOUD_PKI_CA,
        "ca_id": ca_id,
        "expected_counts": dict(sorted(counts.items())),
        "leaves": expected,
    }
    return DemoCloudPki(profile, cas, leaves, states, manifest)


def _unused_request_id(rows: dict[int, _DemoRow], issued: datetime) -> int:
    """A request id from the CA's sequence at that date that the export does not hold."""
    used = {row.request_id for row in rows.values()}
    before = [row.request_id for row in rows.values() if row.spec.issued <= issued]
    candidate = max(before) + 1
    while candidate in used:
        candidate += 1
    return candidate


def _demo_state(
    rng: random.Random,
    profile: Profile,
    device: DemoDevice,
    seen: Seen,
    issued: datetime,
    days: int,
    serial: str | None,
    thumbprint: str,
) -> dict[str, Any]:
    # Intune learns of the certificate a few minutes after the CA issued it.
    learned = issued + timedelta(minutes=rng.randint(2, 9), seconds=rng.randint(0, 59))
    changed = learned + timedelta(minutes=rng.randint(1, 30), seconds=rng.randint(0, 59))
    return state_object(
        record_id=guid(rng),
        profile=profile,
        state=seen.state,
        device_name=device.name,
        user_name=device.user_name,
        issuer=seen.issuer,
        serial=serial,
        thumbprint=thumbprint,
        issued=graph_time(learned, rng.getrandbits(23)),
        expires=graph_time(issued + timedelta(days=days)),
        changed=graph_time(changed, rng.getrandbits(23)),
        error_code=seen.error_code,
    )


def _report_row(rng: random.Random, row: _DemoRow, device_id: str) -> dict[str, Any]:
    """A CertificatesByRAPolicy export row for a certificate the states also show installed."""
    assert row.device is not None and row.profile is not None
    return {
        "DeviceId": device_id,
        "DeviceName": row.device.name,
        "UPN": row.device.upn,
        "UserId": guid(rng),
        "PolicyId": row.profile.id,
        "SerialNumber": row.serial.upper(),
        "Thumbprint": row.thumbprint.upper(),
        "IssuerName": ISSUER_DN,
        "SubjectName": _distinguished_name(row.cn, row.profile),
        "CertificateStatus": "Active",
        "ValidFrom": row.spec.issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ValidTo": (row.spec.issued + timedelta(days=row.spec.days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "CaConfiguration": CA_CONFIG,
    }


def _demo_device(rng: random.Random, device: DemoDevice, device_id: str) -> dict[str, Any]:
    synced = DEMO_AS_OF - timedelta(hours=rng.randint(1, 40), minutes=rng.randint(0, 59))
    return device_object(
        device_id=device_id,
        name=device.name,
        upn=device.upn,
        os=_OS[device.platform],
        aad_id=guid(rng),
        serial=rng.randbytes(6).hex().upper(),
        last_sync=graph_time(synced, rng.getrandbits(23)),
    )


def _manifest(rows: list[_DemoRow], intune_only: list[dict[str, Any]]) -> dict[str, Any]:
    """What the generator meant: each CA row's expected status and the facts behind it."""
    certificates = []
    for row in rows:
        spec = row.spec
        certificates.append(
            {
                "request_id": row.request_id,
                "serial": row.serial,
                "common_name": row.cn,
                "template": row.template.name,
                "device": row.device.name if row.device else None,
                "device_managed": row.device.managed if row.device else None,
                "intune_state": spec.seen.state if spec.seen else None,
                "expected": spec.expect,
                "why": spec.why,
            }
        )
    counts = Counter(c["expected"] for c in certificates)
    counts.update(item["expected"] for item in intune_only)
    return {
        "as_of": DEMO_AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "issuer": DEMO_ISSUER,
        "templates": list(DEMO_TEMPLATES),
        "grace_hours": 24,
        "expected_counts": dict(sorted(counts.items())),
        "certificates": certificates,
        "intune_only": intune_only,
    }


# --- the benchmark data set ---------------------------------------------------------------------

BENCH_SEED = 7
BENCH_SHARDS = 4
BENCH_PROFILES = (
    # (platform, device name prefix, profiles)
    ("win", "WIN", (
        Profile("win", "windows81SCEPCertificateProfile", "Windows Device SCEP", T_WIN,
                SCEP_REQUESTER, "windows10AndLater", "CN={{DeviceName}}"),
        Profile("winp", "windows10PkcsCertificateProfile", "Windows Wi-Fi PKCS",
                Template(f"{OID_PREFIX}.3071.104", "ContosoIntunePKCSWindows"), PKCS_REQUESTER,
                "windows10AndLater", "CN={{DeviceName}}"),
    )),
    ("ios", "IOS", (
        Profile("ios", "iosScepCertificateProfile", "iOS User SCEP", T_IOS, SCEP_REQUESTER,
                "iOS", "CN={{UserPrincipalName}}"),
        Profile("iosp", "iosPkcsCertificateProfile", "iOS Wi-Fi PKCS",
                Template(f"{OID_PREFIX}.3071.105", "ContosoIntunePKCSiOS"), PKCS_REQUESTER,
                "iOS", "CN={{DeviceName}}"),
    )),
    ("and", "AND", (
        Profile("and", "androidWorkProfilePkcsCertificateProfile", "Android Work Profile PKCS",
                T_AND, PKCS_REQUESTER, "androidWorkProfile", "CN={{DeviceName}}"),
        Profile("ands", "androidWorkProfileScepCertificateProfile", "Android Wi-Fi SCEP",
                Template(f"{OID_PREFIX}.3071.106", "ContosoIntuneSCEPAndroid"), SCEP_REQUESTER,
                "androidWorkProfile", "CN={{DeviceName}}"),
    )),
)  # fmt: skip
BENCH_TEMPLATES = tuple(
    p.template.oid for _, _, group in BENCH_PROFILES for p in group if p.template.oid
)
# Share of certificate slots per scenario; the rest is delivered.
BENCH_MIX = (
    ("within_grace", 0.005),
    ("out_of_scope", 0.010),
    ("revoked", 0.015),
    ("expired", 0.015),
    ("not_installed", 0.020),
    ("not_reported", 0.020),
    ("superseded", 0.010),
)
NOT_INSTALLED_STATES = (
    "installFailed",
    "issued",
    "responsePending",
    "someFutureState",
    "challengeIssueFailed",
)


def _json_template(obj: dict[str, Any], fixed: dict[str, str]) -> str:
    """A str.format template that renders exactly as json.dumps(sort_keys, compact) would.

    String values that are "@@name@@" become fields; ``fixed`` bakes in per-profile constants.
    Field values must need no JSON escaping (the benchmark uses plain ASCII).
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    text = text.replace("{", "{{").replace("}", "}}")
    for name, value in fixed.items():
        text = text.replace(f'"@@{name}@@"', json.dumps(value, ensure_ascii=False))
    text = text.replace('"@@error_code@@"', "{error_code}").replace('"@@serial@@"', '"{serial}"')
    while "@@" in text:
        start = text.index('"@@')
        end = text.index('@@"', start + 3)
        text = text[:start] + '"{' + text[start + 3 : end] + '}"' + text[end + 3 :]
    return text


def _state_template(profile: Profile, with_serial: bool) -> str:
    sample = state_object(
        record_id="@@id@@",
        profile=profile,
        state="@@state@@",
        device_name="@@device@@",
        user_name="@@user@@",
        issuer="@@issuer@@",
        serial="@@serial@@" if with_serial else None,
        thumbprint="@@thumbprint@@",
        issued="@@issued@@",
        expires="@@expires@@",
        changed="@@changed@@",
        error_code=0,
    )
    sample["certificateErrorCode"] = "@@error_code@@"
    return _json_template(sample, {}) + "\n"


def _device_template() -> str:
    fields = ("device_id", "name", "upn", "os", "aad_id", "serial", "last_sync")
    return _json_template(device_object(**{f: f"@@{f}@@" for f in fields}), {}) + "\n"


class _Clock:
    """Minute-resolution timestamps formatted from small caches (formatting is the hot path)."""

    def __init__(self, as_of: datetime):
        self.now = int(as_of.timestamp()) // 60
        first_day = self.now // 1440 - 1200
        self.first_day = first_day
        epoch = date(1970, 1, 1)
        days = [epoch + timedelta(days=first_day + i) for i in range(1700)]
        self.day_cu = [f"{d.month}/{d.day}/{d.year}" for d in days]
        self.day_iso = [d.isoformat() for d in days]
        self.min_cu = [
            f"{(m // 60) % 12 or 12}:{m % 60:02d} {'AM' if m < 720 else 'PM'} GMT"
            for m in range(1440)
        ]
        self.min_iso = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]

    def certutil(self, minute: int) -> str:
        day, mod = divmod(minute, 1440)
        return f"{self.day_cu[day - self.first_day]} {self.min_cu[mod]}"

    def graph(self, minute: int, ticks: int) -> str:
        day, mod = divmod(minute, 1440)
        return (
            f"{self.day_iso[day - self.first_day]}T{self.min_iso[mod]}:"
            f"{ticks % 60:02d}.{ticks % 10_000_000:07d}Z"
        )


@dataclass(frozen=True)
class _Shard:
    """One independent slice of the benchmark data, written to part files in ``directory``."""

    index: int
    rows: int
    seed: int
    first_device: int
    first_request: int
    directory: Path
    ca_encoding: str


def _bench_platforms(seed: int) -> list[tuple[str, str, list[tuple[Profile, str, str]], str]]:
    rng = random.Random(seed)
    platforms = []
    for platform, prefix, group in BENCH_PROFILES:
        ids = [Profile(**{**p.__dict__, "id": guid(rng)}) for p in group]
        templates = [(p, _state_template(p, True), _state_template(p, False)) for p in ids]
        platforms.append((platform, prefix, templates, _OS[platform]))
    return platforms


def _write_shard(shard: _Shard) -> dict[str, Any]:
    """Exactly ``shard.rows`` CA rows and as many Intune records; returns what it planted."""
    rows = shard.rows
    rng = random.Random(shard.seed * 1_000_003 + shard.index)
    clock = _Clock(DEMO_AS_OF)
    now = clock.now
    year = 365 * 1440
    platforms = _bench_platforms(shard.seed)
    device_tpl = _device_template()
    thresholds = []
    total = 0.0
    for name, share in BENCH_MIX:
        total += share
        thresholds.append((total, name))
    part = shard.directory
    ca = (part / f"ca.{shard.index}").open("w", encoding=shard.ca_encoding, newline="")
    states = (part / f"states.{shard.index}").open("w", encoding="utf-8", newline="\n")
    devices = (part / f"devices.{shard.index}").open("w", encoding="utf-8", newline="\n")

    expected: Counter[str] = Counter()
    ca_buf: list[str] = []
    st_buf: list[str] = []
    dev_buf: list[str] = []
    produced = records = managed = 0
    device_count = shard.first_device
    request_id = shard.first_request
    random_ = rng.random
    bits = rng.getrandbits
    randint = rng.randint

    def record(
        tpl: tuple[Profile, str, str],
        name: str,
        user: str,
        state: str,
        serial: str,
        thumb: str,
        issued: int,
        days: int,
        error: int = 0,
    ) -> None:
        style = random_()
        if style < 0.03:
            text = tpl[2]
            serial = ""
        else:
            text = tpl[1]
            if style < 0.83:
                serial = serial.upper()
            elif style < 0.88:
                serial = "00" + serial.upper()
        h = f"{bits(128):032x}"
        st_buf.append(text.format(
            id=f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}", state=state, device=name,
            user=user, issuer=ISSUER_DN, serial=serial, thumbprint=thumb,
            issued=clock.graph(issued + 6, request_id), expires=clock.graph(issued + days, 0),
            changed=clock.graph(issued + 21, request_id * 7919), error_code=error,
        ))  # fmt: skip

    def ca_row(
        tpl: tuple[Profile, str, str],
        cn: str,
        issued: int,
        days: int,
        revoked: int | None = None,
        template: Template | None = None,
        requester: str | None = None,
    ) -> tuple[str, str]:
        nonlocal request_id, produced
        request_id += 1 if random_() < 0.9 else 2
        produced += 1
        serial = ca_serial(request_id, bits(64))
        raw = rng.randbytes(20)
        profile = tpl[0]
        tcell = (template or profile.template).cell
        rev = f'"{clock.certutil(revoked)}"' if revoked is not None else "EMPTY"
        ca_buf.append(
            f'"{request_id}","{serial}","{raw.hex(" ")}","{clock.certutil(issued)}",'
            f'"{clock.certutil(issued + days)}","{tcell}","{requester or profile.requester}",'
            f'"{cn}","CN={cn}",{rev},"{REVOKED if revoked is not None else ISSUED}"\r\n'
        )
        return serial, raw.hex().upper()

    while produced < rows:
        _, prefix, templates, os_name = platforms[device_count % 3]
        name = f"{prefix}-{device_count:07d}"
        upn = f"user{device_count:07d}@contoso.com"
        user = f"User {device_count:07d}"
        device_count += 1
        if random_() >= 0.01:
            managed += 1
            h = f"{bits(128):032x}"
            synced = now - randint(30, 5000)
            dev_buf.append(device_tpl.format(
                device_id=h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:],
                name=name, upn=upn, os=os_name, aad_id=f"{bits(128):032x}",
                serial=f"{bits(48):012X}", last_sync=clock.graph(synced, synced),
            ))  # fmt: skip
        for tpl in templates:
            if produced >= rows:
                break
            cn = upn if tpl[0].key == "ios" else name
            roll = random_()
            scenario = "delivered"
            for limit, candidate in thresholds:
                if roll < limit:
                    scenario = candidate
                    break
            if scenario == "superseded" and produced + 2 > rows:
                scenario = "delivered"
            if scenario == "delivered":
                issued = now - randint(1500, 364 * 1440)
                serial, thumb = ca_row(tpl, cn, issued, year)
                record(tpl, name, user, "installed", serial, thumb, issued, year)
            elif scenario == "superseded":
                issued = now - randint(3 * 1440, 300 * 1440)
                serial, thumb = ca_row(tpl, cn, issued, year)
                record(tpl, name, user, "installFailed", serial, thumb, issued, year,
                       INSTALL_FAILED)  # fmt: skip
                serial, thumb = ca_row(tpl, cn, issued + 1440, year)
                record(tpl, name, user, "installed", serial, thumb, issued + 1440, year)
                expected["delivered"] += 1
            elif scenario == "not_installed":
                issued = now - randint(2 * 1440, 300 * 1440)
                serial, thumb = ca_row(tpl, cn, issued, year)
                state = NOT_INSTALLED_STATES[randint(0, len(NOT_INSTALLED_STATES) - 1)]
                error = INSTALL_FAILED if state == "installFailed" else 0
                record(tpl, name, user, state, serial, thumb, issued, year, error)
            elif scenario == "not_reported":
                ca_row(tpl, cn, now - randint(2 * 1440, 300 * 1440), year)
            elif scenario == "within_grace":
                issued = now - randint(60, 1380)
                serial, thumb = ca_row(tpl, cn, issued, year)
                if random_() < 0.5:
                    record(tpl, name, user, "issued", serial, thumb, issued, year)
            elif scenario == "out_of_scope":
                ca_row(tpl, f"{name}.corp.contoso.com", now - randint(2 * 1440, 300 * 1440),
                       year, template=T_MACHINE, requester=f"CONTOSO\\{name}$")  # fmt: skip
            else:
                revoked = scenario == "revoked"
                issued = now - (randint(30, 300) if revoked else randint(370, 700)) * 1440
                serial, thumb = ca_row(
                    tpl, cn, issued, year, issued + randint(1, 20) * 1440 if revoked else None
                )
                if random_() < 0.5:
                    record(tpl, name, user, "installed", serial, thumb, issued, year)
            expected[scenario] += 1
        if len(ca_buf) >= 20000:
            ca.write("".join(ca_buf))
            states.write("".join(st_buf))
            devices.write("".join(dev_buf))
            records += len(st_buf)
            ca_buf.clear()
            st_buf.clear()
            dev_buf.clear()
    records += len(st_buf)
    # Intune also knows certificates this export lacks: fill up to exactly `rows` records.
    unknown = max(0, rows - records)
    win = platforms[0][2][0]
    for i in range(unknown):
        request_id += 3
        serial = ca_serial(request_id, bits(64))
        record(win, f"WIN-X{shard.first_device + i:07d}", "User", "installed", serial,
               rng.randbytes(20).hex().upper(), now - randint(1500, 300 * 1440), year)  # fmt: skip
        if len(st_buf) >= 20000:
            states.write("".join(st_buf))
            st_buf.clear()
    expected["unknown_to_ca"] += unknown
    ca.write("".join(ca_buf))
    states.write("".join(st_buf))
    devices.write("".join(dev_buf))
    for handle in (ca, states, devices):
        handle.close()
    return {
        "expected": dict(expected),
        "devices": device_count - shard.first_device,
        "managed": managed,
    }


def write_bench(
    rows: int, out: Path, *, utf16: bool = False, seed: int = BENCH_SEED, jobs: int = 1
) -> dict[str, Any]:
    """Write ``rows`` CA rows and exactly ``rows`` Intune certificate states.

    The work is cut into BENCH_SHARDS fixed slices (so the bytes do not depend on ``jobs``),
    generated in up to ``jobs`` processes and concatenated.
    """
    from reconcile import __version__

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".snapshot.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    quotas = [rows // BENCH_SHARDS + (i < rows % BENCH_SHARDS) for i in range(BENCH_SHARDS)]
    # Each slot uses at most 2 request ids, each padding record 3; ranges never overlap.
    stride = 5 * (max(quotas) + 1)
    shards = [
        _Shard(i, quota, seed, sum(quotas[:i]), 1000 + i * stride, tmp,
               "utf-16-le" if utf16 else "utf-8")
        for i, quota in enumerate(quotas)
        if quota
    ]  # fmt: skip
    if jobs > 1 and len(shards) > 1:
        with ProcessPoolExecutor(min(jobs, len(shards))) as pool:
            results = list(pool.map(_write_shard, shards))
    else:
        results = [_write_shard(shard) for shard in shards]

    with (out / "ca_export.csv").open("wb") as ca:
        header = certutil_line(CERTUTIL_HEADER)
        ca.write(b"\xff\xfe" + header.encode("utf-16-le") if utf16 else header.encode())
        _append_parts(ca, tmp, "ca", shards)
        trailer = certutil_trailer(rows)
        ca.write(trailer.encode("utf-16-le") if utf16 else trailer.encode())
    for name, collection in (("states", "certificate_states"), ("devices", "managed_devices")):
        with (tmp / f"{collection}.jsonl").open("wb") as handle:
            _append_parts(handle, tmp, name, shards)
    platforms = _bench_platforms(seed)
    with (tmp / "profiles.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for _, _, templates, _ in platforms:
            for profile, _, _ in templates:
                line = json.dumps(
                    profile_object(profile), ensure_ascii=False, separators=(",", ":"),
                    sort_keys=True,
                )  # fmt: skip
                handle.write(line + "\n")
    expected: Counter[str] = Counter()
    for result in results:
        expected.update(result["expected"])
    managed = sum(r["managed"] for r in results)
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "tool_version": __version__,
        **snapshot_metadata("states"),
        "counts": {
            "profiles": sum(len(t[2]) for t in platforms),
            "certificate_states": rows,
            "managed_devices": managed,
        },
        "complete": True,
    }
    (tmp / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", "utf-8")
    target = out / "snapshot"
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    manifest = {
        "rows": rows,
        "intune_records": rows,
        "devices": sum(r["devices"] for r in results),
        "managed_devices": managed,
        "seed": seed,
        "encoding": "utf-16" if utf16 else "utf-8",
        "as_of": DEMO_AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "issuer": DEMO_ISSUER,
        "templates": list(BENCH_TEMPLATES),
        "expected_counts": dict(sorted(expected.items())),
    }
    (out / "bench.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _append_parts(target: BinaryIO, directory: Path, name: str, shards: list[_Shard]) -> None:
    """Concatenate the shards' part files in order, deleting each once copied."""
    for shard in shards:
        path = directory / f"{name}.{shard.index}"
        with path.open("rb") as part:
            shutil.copyfileobj(part, target, 4 * 1024 * 1024)
        path.unlink()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--demo", action="store_true", help="write the bundled demo data")
    what.add_argument("--rows", type=int, help="benchmark: CA rows and Intune records")
    parser.add_argument("--out", type=Path, help="output directory (demo: reconcile/demo)")
    parser.add_argument("--utf16", action="store_true", help="benchmark CA export as UTF-16")
    parser.add_argument("--seed", type=int, default=BENCH_SEED, help="benchmark random seed")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="benchmark: processes to use"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    if args.demo:
        manifest = build_demo(args.out or DEMO_DIR)
        print(json.dumps(manifest["expected_counts"], indent=2))
    else:
        if args.out is None or args.rows < 1:
            print("gen_data: --rows N (N >= 1) needs --out DIR", file=sys.stderr)
            return 2
        manifest = write_bench(
            args.rows, args.out, utf16=args.utf16, seed=args.seed, jobs=args.jobs
        )
        print(json.dumps(manifest["expected_counts"]))
    print(f"generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
