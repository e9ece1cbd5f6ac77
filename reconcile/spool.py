"""Sequences of frozen records that spill to a temp file, so a run's outputs never hold every
verdict in Python objects.

At ten million CA rows a run keeps about half a million findings and as many Intune records
unknown to the CA; as objects (about 2 KB a verdict) they alone would break a 2 GiB budget.
A ``Spool`` keeps one batch in memory and pickles the rest to a scratch file; it is appended
to, frozen, then read as often as needed, in the order it was written. A spool that never
outgrows its buffer never touches the disk, so small runs work exactly as a tuple would.

The scratch file is made by ``mkstemp`` (readable by its owner only) and read back only by
the spool that wrote it, so unpickling it trusts nothing from outside.

``Filtered``, ``Mapped`` and ``Head`` are lazy views over any re-iterable sequence (a spool
or a tuple); ``sort_spooled`` is a bounded external sort (sorted runs spilled, then merged).
"""

from __future__ import annotations

import copyreg
import dataclasses
import heapq
import io
import itertools
import operator
import os
import pickle
import tempfile
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, overload

T = TypeVar("T")
U = TypeVar("U")

BUFFER = 4096
"""Records pickled together in one batch of a scratch file; a reader holds one batch at a time
(read when a spool is made, so tests can shrink it)."""

BUDGET = 200_000
"""Records all live spools together keep in memory before they spill (read on every append):
a run smaller than this never touches the disk, a larger one holds about this many. A 1M-row
run keeps about 175,000 (findings, unknown_to_ca, view-only); a spilled record costs 10-20 µs
each way, so below this nothing pays it."""


class _Held:
    """How many records the buffers of all live spools hold."""

    count = 0


SORT_RUN = 16_384
"""Records ``sort_spooled`` sorts in memory at a time; each sorted run is spilled."""

MERGE_BATCH = 256
"""Batch size of the spilled sort runs: the merge holds one batch of each run at a time."""


_PROTOCOL = pickle.HIGHEST_PROTOCOL


class _Reducers(dict[type, Any]):
    """A pickler dispatch table that pickles a dataclass as its class and field values.

    The default for a frozen slotted dataclass goes through Python-level __getstate__ and
    __setstate__, about three times slower than calling the class with its fields again.
    Other types keep copyreg's reducer, or the ``__reduce_ex__`` the pickler would call itself:
    a type missing from the table cost a ``__missing__`` call and a KeyError for every object
    of it (a verdict's datetimes and enums: 38 against 25 µs a verdict, the same bytes).
    Classes, which the pickler saves by name when the table has nothing for them, are left to
    it.
    """

    def __missing__(self, cls: type) -> Any:
        positional = dataclasses.is_dataclass(cls) and all(
            f.init and f.kw_only is not True for f in dataclasses.fields(cls)
        )
        reduce: Callable[[Any], Any]
        if positional:
            names = [f.name for f in dataclasses.fields(cls)]
            single = len(names) == 1
            get = operator.attrgetter(*names)

            def by_fields(obj: Any) -> tuple[type, tuple[Any, ...]]:
                return cls, ((get(obj),) if single else get(obj))

            reduce = by_fields
        elif cls in copyreg.dispatch_table:
            reduce = copyreg.dispatch_table[cls]
        elif issubclass(cls, type):
            raise KeyError(cls)
        else:
            reduce = operator.methodcaller("__reduce_ex__", _PROTOCOL)
        self[cls] = reduce
        return reduce


_REDUCERS = _Reducers()


def dumps(records: Sequence[Any]) -> bytes:
    """One batch, pickled with the fast dataclass reducers."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(list(records))
    return buffer.getvalue()


def loads(data: bytes) -> list[Any]:
    batch: list[Any] = pickle.loads(data)
    return batch


class Records(Sequence[T]):
    """A re-iterable, sized sequence read front to back; equal to any sequence (a tuple, say)
    with the same items in the same order, so it stands in for the tuples it replaces.

    Indexing walks from the front: it is for tests and small lookups, not for loops.
    """

    __slots__ = ()

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            start, stop, step = index.start, index.stop, index.step
            if (start or 0) >= 0 and (stop is None or stop >= 0) and (step or 1) > 0:
                return tuple(itertools.islice(self, start, stop, step))
            return tuple(self)[index]
        if index < 0:
            index += len(self)
        if index < 0:
            raise IndexError("index out of range")
        for item in itertools.islice(self, index, None):
            return item
        raise IndexError("index out of range")

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} records)"


def _release(buffer: list[Any], scratch: list[IO[bytes]]) -> None:
    """A spool's end: its buffer no longer counts against the budget, its file is closed (and
    with that gone: it never had a name)."""
    _Held.count -= len(buffer)
    buffer.clear()
    for handle in scratch:
        handle.close()
    scratch.clear()


class Spool(Records[T]):
    """Append, ``freeze``, then iterate as often as needed. Records stay in memory while all
    live spools hold fewer than ``BUDGET``; beyond that an appending spool pickles its buffer
    in batches of ``buffer`` records to a scratch file in ``directory`` (the system's temp
    folder by default), closed by ``close`` or when the spool is garbage-collected. The file
    is anonymous (``tempfile.TemporaryFile``: unlinked at once, or deleted on close on
    Windows), so a run the OOM killer ends leaves none of its gigabytes behind.

    ``tally``, when given, counts ``tally(record)`` as records are appended (statuses, say),
    so a count never needs a pass over the file.
    """

    __slots__ = (
        "_batches",
        "_buffer",
        "_directory",
        "_finalizer",
        "_frozen",
        "_limit",
        "_length",
        "_scratch",
        "_tally",
        "_tally_key",
        "__weakref__",
    )

    def __init__(
        self,
        *,
        buffer: int | None = None,
        tally: Callable[[T], Hashable] | None = None,
        directory: Path | None = None,
    ) -> None:
        buffer = BUFFER if buffer is None else buffer
        if buffer < 1:
            raise ValueError("a spool's buffer holds at least one record")
        self._limit = buffer
        self._buffer: list[T] = []
        self._batches: list[tuple[int, int]] = []
        self._length = 0
        self._frozen = False
        self._scratch: list[IO[bytes]] = []
        self._finalizer = weakref.finalize(self, _release, self._buffer, self._scratch)
        self._directory = directory
        self._tally_key = tally
        self._tally: Counter[Hashable] = Counter()

    @classmethod
    def of(
        cls,
        items: Iterable[T],
        *,
        buffer: int | None = None,
        tally: Callable[[T], Hashable] | None = None,
        directory: Path | None = None,
    ) -> Spool[T]:
        """A frozen spool of ``items``, in their order."""
        spool: Spool[T] = cls(buffer=buffer, tally=tally, directory=directory)
        spool.extend(items)
        return spool.freeze()

    def append(self, item: T) -> None:
        if self._frozen:
            raise ValueError("spool is frozen: no more records can be appended")
        self._buffer.append(item)
        self._length += 1
        _Held.count += 1
        if self._tally_key is not None:
            self._tally[self._tally_key(item)] += 1
        if len(self._buffer) > self._limit and _Held.count > BUDGET:
            self._spill()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def freeze(self) -> Spool[T]:
        """No more appends; the spool may be read from now on."""
        self._frozen = True
        return self

    def _spill(self) -> None:
        """The buffer to the scratch file, a batch of ``buffer`` records at a time."""
        if not self._scratch:
            # Open for the spool's life: _release closes it.
            scratch = tempfile.TemporaryFile(  # noqa: SIM115
                prefix="reconcile-spool-", dir=self._directory
            )
            self._scratch.append(scratch)
        handle = self._scratch[0]
        handle.seek(0, os.SEEK_END)
        for start in range(0, len(self._buffer), self._limit):
            data = dumps(self._buffer[start : start + self._limit])
            self._batches.append((handle.tell(), len(data)))
            handle.write(data)
        _Held.count -= len(self._buffer)
        self._buffer.clear()

    @property
    def spilled(self) -> bool:
        """Whether any batch went to the scratch file."""
        return bool(self._batches)

    def tally(self) -> Mapping[Hashable, int]:
        """What ``tally`` counted over every record appended (empty without one)."""
        return dict(self._tally)

    @property
    def tallied(self) -> bool:
        return self._tally_key is not None

    def close(self) -> None:
        """Remove the scratch file and drop the buffer now; the spool is empty from then on."""
        self._finalizer()
        self._batches = []
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def __iter__(self) -> Iterator[T]:
        yield from self._spilled()
        yield from self._buffer

    def _spilled(self) -> Iterator[T]:
        """The records in the scratch file, in order (the buffer's come after them)."""
        if not self._frozen:
            raise ValueError("spool is not frozen yet: freeze it before reading")
        for offset, size in self._batches:
            if not self._scratch:
                raise ValueError("spool is closed")
            handle = self._scratch[0]
            handle.seek(offset)
            yield from loads(handle.read(size))

    def drain(self) -> Iterator[T]:
        """Every record once, each let go as it is read; the spool is closed after. For a
        spool whose records move on into others (the views' sorts): read with ``iter`` the
        spool keeps them all until it goes, beside the copies the others make."""
        try:
            yield from self._spilled()
            buffer = self._buffer
            buffer.reverse()
            while buffer:
                _Held.count -= 1
                yield buffer.pop()
        finally:
            self.close()

    def map(
        self,
        fn: Callable[[T], U],
        *,
        tally: Callable[[U], Hashable] | None = None,
    ) -> Spool[U]:
        """A new frozen spool of ``fn`` over every record (same buffer and folder)."""
        return Spool.of(map(fn, self), buffer=self._limit, tally=tally, directory=self._directory)


class Filtered(Records[T]):
    """The items of ``source`` that ``keep``; counted once, on the first ``len``."""

    __slots__ = ("_count", "_keep", "_source")

    def __init__(self, source: Iterable[T], keep: Callable[[T], bool], count: int | None = None):
        self._source = source
        self._keep = keep
        self._count = count

    def __iter__(self) -> Iterator[T]:
        return filter(self._keep, self._source)

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self)
        return self._count

    def __bool__(self) -> bool:
        if self._count is not None:
            return self._count > 0
        return any(True for _ in self)


class Mapped(Records[U]):
    """``fn`` over each item of ``source``, applied as it is read: as long as ``source``."""

    __slots__ = ("_fn", "_source")

    def __init__(self, source: Sequence[T], fn: Callable[[T], U]):
        self._source = source
        self._fn = fn

    def __iter__(self) -> Iterator[U]:
        return map(self._fn, self._source)

    def __len__(self) -> int:
        return len(self._source)

    def __bool__(self) -> bool:
        return bool(self._source)


class Head(Records[T]):
    """The first ``limit`` items of ``source``."""

    __slots__ = ("_limit", "_source")

    def __init__(self, source: Sequence[T], limit: int):
        self._source = source
        self._limit = max(0, limit)

    def __iter__(self) -> Iterator[T]:
        return itertools.islice(self._source, self._limit)

    def __len__(self) -> int:
        return min(len(self._source), self._limit)

    def __bool__(self) -> bool:
        return self._limit > 0 and bool(self._source)


class Sorter(Generic[T]):
    """A bounded external sort: append in any order, then ``result`` is ``sorted(items,
    key=key)`` as a frozen spool. At most ``run`` records are held for sorting; each full run
    is sorted and spilled, and the runs are merged reading a batch of each at a time.

    Stable, like ``sorted``: each run is sorted stably and the merge takes equal keys from the
    earlier run first.
    """

    def __init__(
        self,
        key: Callable[[T], Any],
        *,
        buffer: int | None = None,
        run: int | None = None,
        directory: Path | None = None,
    ) -> None:
        self._key = key
        self._buffer = buffer
        self._run = SORT_RUN if run is None else run
        self._merge_batch = MERGE_BATCH
        self._directory = directory
        self._chunk: list[T] = []
        self._runs: list[Spool[T]] = []

    def append(self, item: T) -> None:
        self._chunk.append(item)
        if len(self._chunk) >= self._run:
            self._chunk.sort(key=self._key)
            self._runs.append(
                Spool.of(self._chunk, buffer=self._merge_batch, directory=self._directory)
            )
            self._chunk = []

    def result(self) -> Spool[T]:
        chunk, runs = self._chunk, self._runs
        self._chunk, self._runs = [], []
        chunk.sort(key=self._key)
        if not runs:
            return Spool.of(chunk, buffer=self._buffer, directory=self._directory)
        runs.append(Spool.of(chunk, buffer=self._merge_batch, directory=self._directory))
        del chunk
        try:
            merged = heapq.merge(*runs, key=self._key)
            return Spool.of(merged, buffer=self._buffer, directory=self._directory)
        finally:
            for spilled in runs:
                spilled.close()


def sort_spooled(
    items: Iterable[T],
    key: Callable[[T], Any],
    *,
    buffer: int | None = None,
    run: int | None = None,
    directory: Path | None = None,
) -> Spool[T]:
    """``sorted(items, key=key)`` as a frozen spool, never holding more than ``run`` records
    (plus a batch per spilled run while merging); see ``Sorter``."""
    sorter: Sorter[T] = Sorter(key, buffer=buffer, run=run, directory=directory)
    for item in items:
        sorter.append(item)
    return sorter.result()
