"""The records' own constructor (``model._slot_init``) against what ``dataclass`` would give."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconcile.model import (
    CaCertificate,
    IntuneCertificate,
    ManagedDevice,
    Verdict,
    _slot_init,
)
from tests.factories import ca_cert, device, intune_cert, verdict

RECORDS = [CaCertificate, IntuneCertificate, ManagedDevice, Verdict]


def _expected_parameters(cls: type[Any]) -> list[tuple[str, object]]:
    """Each field as ``dataclass`` makes it a parameter: its name and default, in order."""
    return [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls)
    ]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_the_constructor_takes_the_fields_with_their_defaults(cls: type[Any]) -> None:
    parameters = inspect.signature(cls).parameters.values()
    assert [(p.name, p.default) for p in parameters] == _expected_parameters(cls)
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    assert cls.__init__.__qualname__ == f"{cls.__name__}.__init__"


@pytest.mark.parametrize(
    "record",
    [ca_cert(san="UPN=a@contoso.com"), intune_cert(0x10), device("PC-01"), verdict()],
    ids=lambda r: type(r).__name__,
)
def test_a_record_is_built_and_stays_frozen_as_before(record: Any) -> None:
    cls = type(record)
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(cls)}
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    assert by_keyword == by_position == record
    assert hash(by_keyword) == hash(record)
    assert repr(by_position) == repr(record)
    assert pickle.loads(pickle.dumps(record)) == record
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(by_keyword, first, None)
    with pytest.raises(TypeError, match="unexpected keyword"):
        cls(**values, surplus=1)
    with pytest.raises(TypeError, match="missing"):
        cls()


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_each_argument_lands_in_its_own_field_and_defaults_fill_the_rest(
    cls: type[Any],
) -> None:
    """A distinct object per field, so a field set from another's argument shows."""
    fields = dataclasses.fields(cls)
    given = {f.name: object() for f in fields}
    for made in (cls(**given), cls(*given.values())):
        assert {f.name: getattr(made, f.name) for f in fields} == given
    required = {f.name: given[f.name] for f in fields if f.default is dataclasses.MISSING}
    made = cls(**required)
    for f in fields:
        expected = given[f.name] if f.name in required else f.default
        assert getattr(made, f.name) is expected


def test_fields_it_cannot_set_as_dataclass_would_are_refused() -> None:
    with pytest.raises(TypeError, match="only plain fields"):

        @_slot_init
        @dataclass(frozen=True, slots=True)
        class Listed:
            items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="__post_init__"):

        @_slot_init
        @dataclass(frozen=True, slots=True)
        class Checked:
            value: int

            def __post_init__(self) -> None:
                pass
