"""The CA export formats reconcile reads; ``auto`` recognises one from the file itself."""

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
