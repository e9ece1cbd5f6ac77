"""Pages from several workers land in part order, whatever order the threads deliver them in,
so one tenant always gives the same snapshot bytes (and so the same sha256 and run id)."""

from __future__ import annotations

import itertools
import json
import random
import threading
import tracemalloc

from reconcile.intune.sources import SharedSink, _Parts


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, int]]] = []

    def open_collection(self, name: str) -> None:
        pass

    def write(self, name: str, obj: dict[str, int]) -> None:
        self.rows.append((name, dict(obj)))


def pages(part: int, count: int) -> list[list[dict[str, int]]]:
    return [[{"part": part, "n": n}, {"part": part, "n": n + 1}] for n in range(0, 2 * count, 2)]


def expected(sizes: list[int]) -> list[dict[str, int]]:
    return [row for part, size in enumerate(sizes) for page in pages(part, size) for row in page]


def test_every_interleaving_of_three_parts_lands_in_part_order():
    sizes = [2, 1, 2]
    events = [(p, i) for p, size in enumerate(sizes) for i in range(size + 1)]  # last = end
    seen = 0
    for order in itertools.permutations(events):
        if any(order.index((p, i)) > order.index((p, i + 1)) for p, i in events if i < sizes[p]):
            continue  # a worker's own pages (and its end) stay in its order
        recorder = Recorder()
        shared = SharedSink(recorder)
        shared.in_parts("certificate_states")
        for part, index in order:
            if index == sizes[part]:
                shared.end_part("certificate_states", part)
            else:
                shared.write_page("certificate_states", pages(part, sizes[part])[index], part)
        assert [row for _, row in recorder.rows] == expected(sizes)
        seen += 1
    assert seen > 20


def test_threads_with_random_delays_give_the_same_bytes_every_time():
    sizes = [5, 3, 7, 1]
    outcomes = []
    for seed in range(5):
        recorder = Recorder()
        shared = SharedSink(recorder)
        shared.in_parts("certificate_states")
        rng = random.Random(seed)
        delays = {p: [rng.random() / 500 for _ in range(size)] for p, size in enumerate(sizes)}

        def worker(part: int, shared: SharedSink = shared, delays=delays) -> None:
            for page, delay in zip(pages(part, sizes[part]), delays[part], strict=True):
                threading.Event().wait(delay)
                shared.write_page("certificate_states", page, part)
            shared.end_part("certificate_states", part)

        threads = [threading.Thread(target=worker, args=(p,)) for p in range(len(sizes))]
        for thread in reversed(threads):
            thread.start()
        for thread in threads:
            thread.join()
        outcomes.append([row for _, row in recorder.rows])
    assert all(rows == expected(sizes) for rows in outcomes)


def test_waiting_parts_are_spooled_not_kept_as_objects():
    parts = _Parts()
    parts.hold(1, [{"a": 1}, {"b": "ü"}])
    assert list(parts.take(1)) == [{"a": 1}, {"b": "ü"}]
    assert list(parts.take(1)) == []


def test_a_waiting_part_holds_at_most_its_spool_threshold_in_memory():
    parts = _Parts()
    row = {"serial": "AB" * 32, "device": "x" * 200}
    count = 3 * _Parts.SPOOL_BYTES // len(json.dumps(row))
    tracemalloc.start()
    try:
        for part in (1, 2, 3):
            parts.hold(part, itertools.repeat(row, count))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Nine spool thresholds' worth of rows wait; no more than the three thresholds stay in memory.
    assert held < 3 * _Parts.SPOOL_BYTES + (256 << 10)
    assert sum(1 for _ in parts.take(2)) == count


def test_pages_without_a_part_are_written_as_they_come():
    recorder = Recorder()
    shared = SharedSink(recorder)
    shared.write_page("managed_devices", [{"n": 2}])
    shared.write_page("managed_devices", [{"n": 1}])
    assert [row for _, row in recorder.rows] == [{"n": 2}, {"n": 1}]
