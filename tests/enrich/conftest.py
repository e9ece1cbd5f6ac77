"""The evidence step reads the same device-log fixtures as the evidence readers."""

from tests.evidence.conftest import logs

__all__ = ["logs"]
