"""The CA export formats reconcile reads (``auto`` recognises one from the file itself), and the
CAs it reads through Graph instead of an export."""

from __future__ import annotations

from enum import StrEnum


class CaFormat(StrEnum):
    AUTO = "auto"
    CERTUTIL = "certutil"
    CERTUTIL_TEXT = "certutil-text"
    PSPKI = "pspki"
    EJBCA = "ejbca"
    OPENSSL_INDEX = "openssl-index"
    MAPPED = "mapped"


class CaSource(StrEnum):
    """A CA read through Graph rather than from an export file."""

    CLOUD_PKI = "cloud-pki"
