"""PostgreSQL's internal metrics for a trial, OtterTune-style: its cumulative statistics.

The views differ across versions (pg_stat_wal is 14+; in 17 pg_stat_bgwriter
lost its checkpoint columns to pg_stat_checkpointer; columns come and go), so
each view is read whole and only its numeric columns are kept, and a view the
server lacks is skipped rather than queried: a failed query would put an
ERROR in the server log, which is what a failed trial's log excerpt shows.
Per-table views are summed over all user tables on the server side, so the
cost does not grow with the number of tables sent back. Every statement is a
constant; see the PostgreSQL docs, "The Cumulative Statistics System".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

# (metric prefix, view, query) for views read as one row.
_SINGLE_ROW = (
    (
        "pg.database",
        "pg_stat_database",
        "SELECT * FROM pg_stat_database WHERE datname = current_database()",
    ),
    ("pg.bgwriter", "pg_stat_bgwriter", "SELECT * FROM pg_stat_bgwriter"),
    ("pg.checkpointer", "pg_stat_checkpointer", "SELECT * FROM pg_stat_checkpointer"),  # 17+
    ("pg.wal", "pg_stat_wal", "SELECT * FROM pg_stat_wal"),
)
# (metric prefix, view, query) for per-table views, each numeric column summed over all
# user tables, whatever columns this version has; relid is an identifier, not a count.
_TABLE_SUMS = (
    (
        "pg.statio",
        "pg_statio_user_tables",
        "SELECT kv.key, sum((kv.value #>> '{}')::numeric)"
        " FROM pg_statio_user_tables AS t, jsonb_each(to_jsonb(t)) AS kv"
        " WHERE jsonb_typeof(kv.value) = 'number' AND kv.key <> 'relid' GROUP BY kv.key",
    ),
    (
        "pg.tables",
        "pg_stat_user_tables",
        "SELECT kv.key, sum((kv.value #>> '{}')::numeric)"
        " FROM pg_stat_user_tables AS t, jsonb_each(to_jsonb(t)) AS kv"
        " WHERE jsonb_typeof(kv.value) = 'number' AND kv.key <> 'relid' GROUP BY kv.key",
    ),
)
_PRESENT = (
    "SELECT c.relname FROM pg_catalog.pg_class AS c"
    " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
    " WHERE n.nspname = 'pg_catalog' AND c.relname = ANY(%s)"
)
# Identifiers, and numbackends: a connection count at one instant that includes
# the snapshot's own connection, so it says nothing about the trial.
_SKIP = frozenset({"datid", "relid", "numbackends"})

PG_GAUGES: frozenset[str] = frozenset(
    f"pg.tables.{name}"
    for name in ("n_live_tup", "n_dead_tup", "n_mod_since_analyze", "n_ins_since_vacuum")
)
"""PostgreSQL metrics that are levels (estimated row counts), not running totals."""


def pg_snapshot(conn: Any) -> dict[str, float]:
    """The statistics views' numeric values now, over one open psycopg2 connection.

    About seven short statements under a 5 s statement_timeout (set for the
    session, so pass a connection of your own). The connection should be in
    autocommit mode so each statement sees fresh statistics: PostgreSQL caches
    them for the length of a transaction.
    """
    out: dict[str, float] = {}
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 5000")
        cur.execute(_PRESENT, ([view for _, view, _ in (*_SINGLE_ROW, *_TABLE_SUMS)],))
        present = {row[0] for row in cur.fetchall()}
        for prefix, view, query in _SINGLE_ROW:
            if view not in present:
                continue
            cur.execute(query)
            row = cur.fetchone()
            if row is not None:
                columns = [d[0] for d in cur.description]
                _keep(out, prefix, zip(columns, row, strict=True))
        for prefix, view, query in _TABLE_SUMS:
            if view in present:
                cur.execute(query)
                _keep(out, prefix, cur.fetchall())
    return out


def _keep(out: dict[str, float], prefix: str, pairs: Iterable[Sequence[Any]]) -> None:
    """Store the finite numeric (column, value) pairs as ``prefix.column``: the store
    takes nothing else, and NULLs, timestamps and names are not metrics."""
    for column, value in pairs:
        if column in _SKIP or isinstance(value, bool):
            continue
        if isinstance(value, int | float | Decimal) and math.isfinite(value):
            out[f"{prefix}.{column}"] = float(value)
