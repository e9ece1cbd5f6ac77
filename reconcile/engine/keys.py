"""Python's text rules (issuer keys, device keys, serial spelling) as the engine applies them.

``issuer_key`` reads a DN with regular expressions and case-folds: there are a handful of
distinct issuers in a run, so Python computes each once into a mapping table. Device names are
many: the ASCII ones (nearly all) get ``device_key`` as a SQL expression, equal to the Python
rule there; the few others go through Python, once per distinct name.
"""

from __future__ import annotations

from reconcile.engine.db import Database
from reconcile.identity import device_fold, issuer_key

TEXT_MAP = {"text": "VARCHAR", "value": "VARCHAR"}
# str.strip()'s whitespace within ASCII (str.isspace): space, \t \n \v \f \r and \x1c-\x1f.
_ASCII_SPACE = "'" + "".join(map(chr, (32, 9, 10, 11, 12, 13, 28, 29, 30, 31))) + "'"
_LABEL = "[A-Za-z0-9_-]+"


def _is_ascii(column: str) -> str:
    return f"strlen({column}) = length({column})"


def issuer_keys(db: Database, name: str, query: str) -> None:
    """Table ``name`` (text, value): ``issuer_key`` of every distinct non-NULL text ``query``
    selects (its one column)."""
    db.execute(f"CREATE OR REPLACE TABLE {name} (text VARCHAR, value VARCHAR)")
    texts = db.rows(f"SELECT DISTINCT t FROM ({query}) AS q(t) WHERE t IS NOT NULL")
    db.insert(name, TEXT_MAP, ((t, issuer_key(t)) for (t,) in texts))


def device_folds(db: Database, name: str, query: str) -> None:
    """Table ``name`` (text, value): ``device_fold`` of the distinct non-ASCII texts ``query``
    selects; ``device_fold_sql`` reads it for those."""
    db.execute(f"CREATE OR REPLACE TABLE {name} (text VARCHAR, value VARCHAR)")
    texts = db.rows(
        f"SELECT DISTINCT t FROM ({query}) AS q(t) WHERE t IS NOT NULL AND NOT {_is_ascii('t')}"
    )
    db.insert(name, TEXT_MAP, ((t, device_fold(t)) for (t,) in texts))


def device_fold_sql(column: str, table: str) -> str:
    """``device_fold(column)``: NULL for NULL or an empty key; a host name by its first label.

    ``identity._HOST_NAME`` on ASCII text: dot-separated labels of ``[A-Za-z0-9_-]`` (at least
    two, an optional trailing dot) whose last label is not all digits (an IP address).
    """
    # trim() with a character set is slow: only names that start or end in a control
    # character or a space (code 32 or less) need it.
    text = (
        f"(CASE WHEN ascii({column}) <= 32 OR ascii(right({column}, 1)) <= 32 "
        f"THEN trim({column}, {_ASCII_SPACE}) ELSE {column} END)"
    )
    host = (
        f"(strpos({text}, '.') > 0 AND strpos({text}, '@') = 0 "
        f"AND regexp_full_match({text}, '{_LABEL}(\\.{_LABEL})+\\.?') "
        f"AND NOT regexp_full_match(regexp_extract({text}, '({_LABEL})\\.?$', 1), '[0-9]+'))"
    )
    ascii_key = f"lower(CASE WHEN {host} THEN split_part({text}, '.', 1) ELSE {text} END)"
    return (
        f"(CASE WHEN {column} IS NULL OR {column} = '' THEN NULL "
        f"WHEN {_is_ascii(column)} THEN nullif({ascii_key}, '') "
        f"ELSE (SELECT f.value FROM {table} f WHERE f.text = {column}) END)"
    )


def serial_hex_sql(column: str) -> str:
    """``identity.serial_hex`` of a canonical hex serial column: whole bytes."""
    return f"(CASE WHEN length({column}) % 2 = 1 THEN '0' || {column} ELSE {column} END)"
