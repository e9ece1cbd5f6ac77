"""The same reconciliation written the way a pandas user would, as the benchmark's yardstick.

Same inputs (a certutil CSV export and a snapshot directory), same classification order as
reconcile/join.py: out_of_scope, revoked, expired, delivered, within_grace, superseded,
not_installed, not_reported; plus unknown_to_ca and device-gone flags. Serials are compared in
their canonical hex form (no separators, lower case, no leading zeros), which is integer equality
without 152-bit integers that pandas cannot hold. Prints the per-status counts as JSON.

    python benchmarks/pandas_baseline.py --snapshot DIR --ca-export FILE --as-of ISO \\
        --ca-issuer NAME --template OID ... --csv OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CA_COLUMNS = {
    "Issued Request ID": "request_id",
    "Serial Number": "serial",
    "Certificate Hash": "thumbprint",
    "Certificate Effective Date": "not_before",
    "Certificate Expiration Date": "not_after",
    "Certificate Template": "template",
    "Issued Common Name": "cn",
    "Revocation Date": "revoked_at",
}
STATE_COLUMNS = {
    "certificateSerialNumber": "serial",
    "certificateThumbprint": "thumbprint",
    "certificateIssuer": "issuer",
    "certificateIssuanceState": "state",
    "deviceDisplayName": "device",
    "@reconcile.profileId": "profile",
}
REPORT_COLUMNS = {
    "SerialNumber": "serial",
    "Thumbprint": "thumbprint",
    "IssuerName": "issuer",
    "CertificateStatus": "state",
    "DeviceName": "device",
    "PolicyId": "profile",
}
REPORT_DELIVERED = ("installed", "issued", "active", "valid")
DATE_FORMAT = "%m/%d/%Y %I:%M %p GMT"
FINDINGS = ("not_installed", "not_reported", "superseded")
FORMULA = r"^[=+\-@\t\r\n\x00]"


def _encoding(path: Path) -> str:
    head = path.open("rb").read(3)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    return "utf-8-sig"


def read_ca(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        encoding=_encoding(path),
        usecols=list(CA_COLUMNS),
        dtype=str,
        na_values=["EMPTY"],
        keep_default_na=False,
    ).rename(columns=CA_COLUMNS)
    frame = frame[frame["serial"].fillna("") != ""]  # the trailing "N Rows", "CertUtil:" lines
    frame["key"] = frame["serial"].str.lower().str.lstrip("0")
    frame["thumbprint"] = frame["thumbprint"].str.replace(" ", "", regex=False).str.upper()
    for column in ("not_before", "not_after", "revoked_at"):
        frame[column] = pd.to_datetime(frame[column], format=DATE_FORMAT, utc=True)
    parts = frame["template"].str.extract(r"^(?P<oid>\d+(?:\.\d+)+)(?:\s+(?P<name>.*))?$")
    frame["template_oid"] = parts["oid"]
    frame["template_name"] = parts["name"].fillna(frame["template"].where(parts["oid"].isna()))
    return frame


def _read_jsonl(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    reader = pd.read_json(path, lines=True, dtype=False, chunksize=250_000, encoding="utf-8")
    chunks = [chunk.reindex(columns=list(columns)).rename(columns=columns) for chunk in reader]
    if not chunks:
        return pd.DataFrame(columns=list(columns.values()))
    return pd.concat(chunks, ignore_index=True)


def read_intune(snapshot: Path) -> pd.DataFrame:
    frames = []
    states = snapshot / "certificate_states.jsonl"
    if states.exists():
        frame = _read_jsonl(states, STATE_COLUMNS)
        frame["delivered"] = frame["state"] == "installed"
        frames.append(frame)
    reports = snapshot / "report_rows.jsonl"
    if reports.exists():
        frame = _read_jsonl(reports, REPORT_COLUMNS)
        frame["delivered"] = frame["state"].str.casefold().isin(REPORT_DELIVERED)
        frames.append(frame)
    intune = pd.concat(frames, ignore_index=True)
    serial = intune["serial"].astype("string").str.replace(r"[\s:\-]", "", regex=True)
    intune["key"] = serial.str.lower().str.lstrip("0").replace("", pd.NA)
    intune["thumbprint"] = (
        intune["thumbprint"].astype("string").str.replace(r"[\s:\-]", "", regex=True).str.upper()
    )
    intune["issuer_cn"] = (
        intune["issuer"]
        .astype("string")
        .str.extract(r"(?i)CN\s*=\s*([^,]+)", expand=False)
        .str.strip()
        .str.casefold()
    )
    intune["device"] = intune["device"].astype("string")
    intune["device_key"] = intune["device"].str.casefold()
    return intune


def classify(
    ca: pd.DataFrame,
    intune: pd.DataFrame,
    as_of: pd.Timestamp,
    issuer: str,
    templates: list[str],
    grace_hours: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    issuer_cn = issuer.casefold()
    same_issuer = intune["issuer_cn"].isna() | (intune["issuer_cn"] == issuer_cn)
    aggregations = {
        "delivered": ("delivered", "max"),
        "state": ("state", "first"),
        "device": ("device", "first"),
        "device_key": ("device_key", "first"),
        "profile": ("profile", "first"),
    }
    by_serial = intune[intune["key"].notna() & same_issuer].groupby("key").agg(**aggregations)
    ca = ca.merge(by_serial, left_on="key", right_index=True, how="left")
    thumb_only = intune[intune["key"].isna() & intune["thumbprint"].notna()]
    by_thumb = thumb_only.groupby("thumbprint").agg(**aggregations)
    missing = ca["delivered"].isna()
    if missing.any() and len(by_thumb):
        filled = ca.loc[missing, ["thumbprint"]].merge(
            by_thumb, left_on="thumbprint", right_index=True, how="left"
        )
        for column in aggregations:
            ca.loc[missing, column] = filled[column].to_numpy()
    known = ca["delivered"].notna()
    delivered = ca["delivered"].fillna(False).astype(bool)

    wanted = [t.casefold() for t in templates]
    in_scope = ca["template_oid"].str.casefold().isin(wanted) | ca[
        "template_name"
    ].str.casefold().isin(wanted)
    ca["link_ca"] = ca["cn"].str.casefold() + "|" + ca["template_oid"].fillna(ca["template_name"])
    ca["link_intune"] = ca["device_key"] + "|" + ca["profile"]

    conditions = [
        ~in_scope if wanted else pd.Series(False, index=ca.index),
        ca["revoked_at"].notna(),
        ca["not_after"] < as_of,
        delivered,
        ca["not_before"] > as_of - pd.Timedelta(hours=grace_hours),
    ]
    choices = ["out_of_scope", "revoked", "expired", "delivered", "within_grace"]
    ca["status"] = np.select(conditions, choices, default="")
    is_delivered = ca["status"] == "delivered"
    newest = pd.concat(
        [
            ca.loc[is_delivered, ["link_ca", "not_before"]].rename(columns={"link_ca": "link"}),
            ca.loc[is_delivered, ["link_intune", "not_before"]].rename(
                columns={"link_intune": "link"}
            ),
        ]
    )
    newest = newest.dropna().groupby("link")["not_before"].max()
    open_ = ca["status"] == ""
    newer_ca = ca["link_ca"].map(newest)
    newer_intune = ca["link_intune"].map(newest)
    superseded = open_ & (
        (newer_ca > ca["not_before"]).fillna(False)
        | (newer_intune > ca["not_before"]).fillna(False)
    )
    ca.loc[superseded, "status"] = "superseded"
    ca.loc[open_ & ~superseded & known, "status"] = "not_installed"
    ca.loc[open_ & ~superseded & ~known, "status"] = "not_reported"

    covered = intune["issuer_cn"] == issuer_cn
    unmatched = ~intune["key"].isin(ca["key"]) & ~(
        intune["key"].isna() & intune["thumbprint"].isin(ca["thumbprint"])
    )
    unknown = intune[covered & unmatched].drop_duplicates(subset=["key", "thumbprint"])
    return ca, unknown


def _neutralise(column: pd.Series) -> pd.Series:
    text = column.astype("string")
    return text.where(~text.str.match(FORMULA).fillna(False), "'" + text)


def write_findings(ca: pd.DataFrame, devices: set[str] | None, path: Path) -> int:
    findings = ca[ca["status"].isin(FINDINGS)].copy()
    if devices is not None:
        gone = findings["device_key"].notna() & ~findings["device_key"].isin(devices)
        findings["device_in_intune"] = np.where(
            findings["device"].isna(), "", np.where(gone, "no", "yes")
        )
    out = pd.DataFrame(
        {
            "status": findings["status"],
            "serial_number": findings["serial"].str.upper(),
            "thumbprint": findings["thumbprint"],
            "subject": _neutralise(findings["cn"]),
            "template": findings["template_name"].fillna(findings["template_oid"]),
            "request_id": findings["request_id"],
            "issued_at": findings["not_before"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires_at": findings["not_after"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "intune_state": findings["state"],
            "device_name": _neutralise(findings["device"]),
            "profile": findings["profile"],
            "device_in_intune": findings.get("device_in_intune", ""),
        }
    )
    out.to_csv(path, index=False, lineterminator="\r\n", encoding="utf-8-sig")
    return len(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pandas baseline for benchmarks/bench_run.py")
    parser.add_argument("--snapshot", type=Path, required=True)
    parser.add_argument("--ca-export", type=Path, required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--ca-issuer", required=True)
    parser.add_argument("--template", action="append", default=[])
    parser.add_argument("--grace-hours", type=float, default=24.0)
    parser.add_argument("--csv", type=Path, required=True)
    args = parser.parse_args(argv)

    ca = read_ca(args.ca_export)
    intune = read_intune(args.snapshot)
    devices_path = args.snapshot / "managed_devices.jsonl"
    devices = None
    if devices_path.exists():
        names = _read_jsonl(devices_path, {"deviceName": "device"})["device"]
        devices = set(names.dropna().str.casefold())
    as_of = pd.Timestamp(args.as_of).tz_convert("UTC")
    ca, unknown = classify(ca, intune, as_of, args.ca_issuer, args.template, args.grace_hours)
    write_findings(ca, devices, args.csv)
    counts = ca["status"].value_counts().to_dict()
    counts["unknown_to_ca"] = len(unknown)
    print(json.dumps(dict(sorted((k, int(v)) for k, v in counts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
