"""What the emulated tenant's Microsoft Cloud PKI holds: issuing CAs and their leaf certificates.

Served by the emulator as Graph beta serves them (paged with ``@odata.nextLink``, faults by
route name like every collection). ``forbidden`` makes both collections answer 403 with the
message Intune writes, naming the scopes the app lacks, so ``doctor`` can be tested on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile.ca.cloudpki import CAS, LEAVES
from reconcile.errors import InputError

ROUTES = ("cloud_pki_cas", "cloud_pki_leaves", "cloud_pki_ca_leaves")
PATTERNS = (
    ("GET", "cloud_pki_cas", r"^/beta/deviceManagement/cloudCertificationAuthority$"),
    (
        "GET",
        "cloud_pki_leaves",
        r"^/beta/deviceManagement/cloudCertificationAuthorityLeafCertificate$",
    ),
    (
        "GET",
        "cloud_pki_ca_leaves",
        r"^/beta/deviceManagement/cloudCertificationAuthority/(?P<id>[^/]+)"
        r"/cloudCertificationAuthorityLeafCertificate$",
    ),
)

CA_PROPERTIES = frozenset(
    {
        "id",
        "displayName",
        "description",
        "scepServerUrl",
        "certificateRevocationListUrl",
        "certificateDownloadUrl",
        "certificationAuthorityIssuerUri",
        "ocspResponderUri",
        "certificationAuthorityStatus",
        "eTag",
        "lastModifiedDateTime",
        "roleScopeTagIds",
        "createdDateTime",
        "certificationAuthorityIssuerId",
        "issuerCommonName",
        "cloudCertificationAuthorityType",
        "validityPeriodInYears",
        "validityStartDateTime",
        "validityEndDateTime",
        "organizationName",
        "organizationUnit",
        "countryName",
        "stateName",
        "localityName",
        "certificateKeySize",
        "cloudCertificationAuthorityHashingAlgorithm",
        "thumbprint",
        "serialNumber",
        "subjectName",
        "commonName",
        "certificateSigningRequest",
        "extendedKeyUsages",
        "versionNumber",
        "rootCertificateCommonName",
        "keyPlatform",
    }
)
LEAF_PROPERTIES = frozenset(
    {
        "id",
        "subjectName",
        "issuerId",
        "issuerName",
        "certificateStatus",
        "validityStartDateTime",
        "validityEndDateTime",
        "crlDistributionPointUrl",
        "certificationAuthorityIssuerUri",
        "ocspResponderUri",
        "thumbprint",
        "serialNumber",
        "revocationDateTime",
        "deviceName",
        "userPrincipalName",
        "deviceId",
        "userId",
        "devicePlatform",
        "keyUsages",
        "extendedKeyUsages",
    }
)
CONTEXT = "beta/$metadata#deviceManagement/"


def _objects(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    objects = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", path, number) from None
            if not isinstance(obj, dict):
                raise InputError("line is not a JSON object", path, number)
            objects.append(obj)
    return objects


@dataclass
class CloudPki:
    """Issuing CAs and leaves as Graph JSON; ``forbidden`` lists the scopes a 403 names."""

    cas: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[dict[str, Any]] = field(default_factory=list)
    forbidden: Sequence[str] | None = None

    @classmethod
    def from_snapshot(cls, directory: Path) -> CloudPki:
        """What a snapshot fetched with --ca-source cloud-pki holds (empty if it holds none)."""
        return cls(
            cas=_objects(directory / f"{CAS}.jsonl"),
            leaves=_objects(directory / f"{LEAVES}.jsonl"),
        )

    def ca(self, ca_id: str) -> dict[str, Any] | None:
        return next((c for c in self.cas if c.get("id") == ca_id), None)

    def leaves_of(self, ca_id: str) -> list[dict[str, Any]]:
        return [leaf for leaf in self.leaves if leaf.get("issuerId") == ca_id]

    def forbidden_message(self) -> str:
        """Intune's 403 text: the scopes it wants, then an operation id."""
        scopes = ", ".join(self.forbidden or ())
        return (
            '{"_version": 3, "Message": "Application is not authorized to perform this '
            f"operation. Application must have one of the following scopes: {scopes} - "
            'Operation ID (for customer support): 00000000-0000-0000-0000-000000000000"}'
        )
