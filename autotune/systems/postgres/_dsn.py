"""DSNs as libpq reads them, and as autotune shows and stores them: without secrets.

A regex cannot redact a DSN: libpq accepts quoted values with spaces and
escaped quotes (``password='se cret'``), URIs with percent-encoded passwords
and ``?password=`` parameters. libpq's own parser (``parse_dsn``) reads every
form; what is shown is rebuilt from its parameters with the secret ones left out.
"""

from __future__ import annotations

import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

# libpq parameters whose values are secrets (passfile only names a file).
SECRET = ("password", "sslpassword")


def public_dsn(dsn: str) -> str:
    """``dsn`` in libpq's key=value form with its passwords shown as ``***``.

    A DSN libpq cannot parse is not echoed at all, since where its secret
    starts and ends cannot be known.
    """
    try:
        params = parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "(a DSN libpq cannot parse; not shown)"
    shown = make_dsn(**{k: v for k, v in params.items() if k not in SECRET})
    hidden = [f"{k}=***" for k in SECRET if k in params]
    return " ".join(x for x in (shown, *hidden) if x) or "(libpq's defaults)"
