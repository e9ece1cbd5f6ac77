from __future__ import annotations

import io

from reconcile.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream)
    progress("certificate_states", 1000)
    progress.close()
    assert stream.getvalue() == ""


def test_redraws_at_most_once_per_interval_and_ends_the_line():
    now = [0.0]
    stream = Terminal()
    progress = Progress(stream, interval=1.0, clock=lambda: now[0])
    progress("certificate_states", 1000)
    progress("certificate_states", 2000)
    now[0] = 1.5
    progress("managed_devices", 10)
    progress.close()
    lines = stream.getvalue().split("\r")[1:]
    assert lines[0] == "fetching: certificate_states 1,000"
    assert lines[1] == "fetching: certificate_states 2,000, managed_devices 10"
    assert stream.getvalue().endswith("managed_devices 10\n")
