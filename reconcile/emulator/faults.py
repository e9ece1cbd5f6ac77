"""Fault injection: which requests fail, how, and how often.

A fault matches requests by route name and/or regular expressions on path and query; it fires
on matching requests number ``after + 1`` to ``after + times`` (``times=None``: for ever).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    THROTTLE = "throttle"  # 429, Retry-After when retry_after is set
    UNAVAILABLE = "unavailable"  # 503, Retry-After when retry_after is set
    GATEWAY_TIMEOUT = "gateway-timeout"  # 504
    SERVER_ERROR = "server-error"  # 500
    DROP = "drop"  # close the connection without answering
    SLOW = "slow"  # answer normally after ``delay`` seconds
    EXPORT_FAILED = "export-failed"  # the export job ends in status failed
    INVALID_SECRET = "invalid-secret"  # the token endpoint rejects the client secret
    # an export job without a "(PolicyId eq '...')" filter is refused with 400, as a tenant
    # whose report only exports per certificate profile would
    POLICY_FILTER_REQUIRED = "policy-filter-required"
    # the page's @odata.nextLink carries a tab in its host (urlsplit drops it, httpx refuses it)
    NEXT_LINK_CONTROL = "next-link-control"


# Faults that only make sense on one route default to it.
_DEFAULT_ROUTES = {
    FaultKind.EXPORT_FAILED: "export_status",
    FaultKind.INVALID_SECRET: "token",
    FaultKind.POLICY_FILTER_REQUIRED: "export_create",
}

ROUTES = (
    "openid",
    "token",
    "devicecode",
    "msi",
    "profiles",
    "states",
    "devices",
    "export_create",
    "export_list",
    "export_status",
    "download",
    "ndes_connectors",
    "connector_details",
    "unknown",
    "cloud_pki_cas",
    "cloud_pki_leaves",
    "cloud_pki_ca_leaves",
)


@dataclass
class Fault:
    """One injected failure; ``hits`` counts how often it fired (read it in tests)."""

    kind: FaultKind
    route: str | None = None
    path: str | None = None
    query: str | None = None
    times: int | None = 1
    after: int = 0
    retry_after: int | None = 1
    retry_after_date: bool = False
    delay: float = 0.0
    seen: int = field(default=0, init=False)
    hits: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        if self.route is None:
            self.route = _DEFAULT_ROUTES.get(self.kind)
        if self.route is not None and self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; one of {', '.join(ROUTES)}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    def claim(self, route: str, path: str, query: str) -> bool:
        """Count a matching request and say whether this fault fires on it."""
        if self.route is not None and self.route != route:
            return False
        if self.path is not None and not re.search(self.path, path):
            return False
        if self.query is not None and not re.search(self.query, query):
            return False
        with self._lock:
            self.seen += 1
            position = self.seen - self.after
            fires = position >= 1 and (self.times is None or position <= self.times)
            if fires:
                self.hits += 1
            return fires


def _int_or_none(value: str) -> int | None:
    return None if value.lower() in ("none", "forever") else int(value)


def parse_fault(spec: str) -> Fault:
    """``kind[:key=value,...]``, e.g. ``throttle:route=states,times=3,retry_after=1``.

    ``times=forever`` makes a persistent fault; ``retry_after=none`` drops the header.
    """
    kind_text, _, rest = spec.partition(":")
    try:
        fault = Fault(FaultKind(kind_text.strip()))
    except ValueError:
        choices = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"unknown fault kind {kind_text!r}; one of {choices}") from None
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault option {item!r} is not key=value")
        if key == "times":
            fault.times = _int_or_none(value)
        elif key == "after":
            fault.after = int(value)
        elif key == "retry_after":
            fault.retry_after = _int_or_none(value)
        elif key == "delay":
            fault.delay = float(value)
        elif key == "retry_after_date":
            fault.retry_after_date = value.lower() in ("1", "true", "yes")
        elif key == "route":
            fault.route = value
        elif key == "path":
            fault.path = value
        elif key == "query":
            fault.query = value
        else:
            raise ValueError(f"unknown fault option {key!r}")
    fault.__post_init__()
    return fault
