"""DSNs are shown and stored without their secrets, in every form libpq reads."""

from __future__ import annotations

import pytest
from psycopg2.extensions import make_dsn, parse_dsn

from autotune.systems.postgres import public_dsn

# Spaces, both quotes, a backslash and an @: what broke the old regex.
SECRET = "se cret'@\"x\\y"


@pytest.mark.parametrize(
    "dsn",
    [
        make_dsn(host="/tmp", port="5432", user="u", dbname="db", password=SECRET),
        "host=h user=u password=topsecret99 dbname=d",
        "postgresql://u:se%20cret%27%40x@h:5/db?sslmode=disable",
        "postgresql://h/db?password=se%20cret",
        make_dsn(host="h", sslpassword=SECRET),
    ],
)
def test_no_part_of_the_password_is_shown(dsn: str) -> None:
    params = parse_dsn(dsn)
    secret = params.get("password") or params["sslpassword"]
    shown = public_dsn(dsn)
    for part in {secret, secret[:4], secret[-4:], *(w for w in secret.split() if len(w) > 3)}:
        assert part not in shown
    assert "=***" in shown
    # Everything else is there, as libpq reads it.
    rest = parse_dsn(shown.replace("***", "x"))
    assert {k: v for k, v in rest.items() if "password" not in k} == {
        k: v for k, v in params.items() if "password" not in k
    }


def test_a_dsn_without_a_password_is_shown_whole() -> None:
    assert public_dsn("host=h port=5 dbname=d") == "dbname=d host=h port=5"
    assert public_dsn("") == "(libpq's defaults)"


def test_a_dsn_libpq_cannot_parse_is_not_echoed() -> None:
    shown = public_dsn("host=h password='unterminated secret")
    assert "secret" not in shown and "cannot parse" in shown
