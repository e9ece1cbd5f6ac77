"""One entry point for every device log: detect the format, then stream it through its parser."""

from __future__ import annotations

from pathlib import Path

from reconcile.evidence.android import parse_android
from reconcile.evidence.ios import parse_ios
from reconcile.evidence.model import ParsedLog
from reconcile.evidence.source import LogFormat, ParseOptions, detect, sha256_of
from reconcile.evidence.windows import parse_windows


def parse_log(path: Path, options: ParseOptions, sha256: str | None = None) -> ParsedLog:
    """Raises InputError for a file that is no known log; bad lines are only counted."""
    log_format = detect(path)
    digest = sha256 if sha256 is not None else sha256_of(path)
    match log_format:
        case LogFormat.ANDROID:
            return parse_android(path, options, digest)
        case LogFormat.IOS:
            return parse_ios(path, options, digest)
        case LogFormat.WINDOWS_XML:
            return parse_windows(path, options, digest, xml=True)
        case LogFormat.WINDOWS_CSV:
            return parse_windows(path, options, digest, xml=False)
