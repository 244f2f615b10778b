"""Rendering configs as postgresql.conf lines, ALTER SYSTEM statements and JSON."""

from __future__ import annotations

import json
import re

import pytest

from autotune.cli._format import formatted, quote_literal, render
from autotune.spec import Config, Spec

INJECTION = "'; DROP TABLE x; --"


def test_quote_literal_doubles_single_quotes() -> None:
    assert quote_literal("on") == "'on'"
    assert quote_literal("") == "''"
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("''") == "''''''"
    assert quote_literal(INJECTION) == "'''; DROP TABLE x; --'"


@pytest.mark.parametrize("text", [INJECTION, "a'b'c", "'", "x' OR '1'='1", "\\'; SELECT 1; --"])
def test_quote_literal_always_yields_one_closed_literal(text: str) -> None:
    quoted = quote_literal(text)
    assert quoted.startswith("'") and quoted.endswith("'")
    inner = quoted[1:-1]
    # every quote inside is doubled: removing the pairs leaves no quote that could close it
    assert "'" not in inner.replace("''", "")
    assert inner.replace("''", "'") == text


@pytest.fixture
def config() -> Config:
    return {
        "buffers": 16384,
        "mem": 4096,
        "ratio": 0.25,
        "auto": -1,
        "flush": 0,
        "mode": "b",
        "jit": False,
    }


def test_formatted_uses_units_and_bare_special_values(toy_spec: Spec, config: Config) -> None:
    assert formatted(toy_spec, config) == {
        "buffers": "128MB",
        "mem": "4MB",
        "ratio": "0.25",
        "auto": "-1",
        "flush": "0",
        "mode": "b",
        "jit": "off",
    }


def test_render_conf(toy_spec: Spec, config: Config) -> None:
    assert render(toy_spec, config, "conf").splitlines() == [
        "buffers = '128MB'  # needs a restart",
        "mem = '4MB'",
        "ratio = 0.25",
        "auto = -1",
        "flush = 0",
        "mode = 'b'",
        "jit = 'off'",
    ]


def test_render_sql_sets_restart_knobs_last_and_says_they_need_a_restart(
    toy_spec: Spec, config: Config
) -> None:
    assert render(toy_spec, config, "sql").splitlines() == [
        """ALTER SYSTEM SET "mem" = '4MB';""",
        """ALTER SYSTEM SET "ratio" = '0.25';""",
        """ALTER SYSTEM SET "auto" = '-1';""",
        """ALTER SYSTEM SET "flush" = '0';""",
        """ALTER SYSTEM SET "mode" = 'b';""",
        """ALTER SYSTEM SET "jit" = 'off';""",
        "-- read only at server start: set now, in effect after the restart below",
        """ALTER SYSTEM SET "buffers" = '128MB';""",
        "SELECT pg_reload_conf();",
        "-- now restart PostgreSQL (pg_ctl restart, or systemctl restart postgresql) for "
        "buffers: a reload does not apply them",
    ]
    # Without a restart-class knob it ends with the reload, as before.
    online = {k: v for k, v in config.items() if k != "buffers"}
    assert render(toy_spec, online, "sql").splitlines()[-1] == "SELECT pg_reload_conf();"


def test_render_json(toy_spec: Spec, config: Config) -> None:
    data = json.loads(render(toy_spec, config, "json", {"experiment": "e", "trial": 3}))
    assert data["experiment"] == "e"
    assert data["trial"] == 3
    assert data["config"]["buffers"] == "128MB"
    assert data["native"] == config


def test_render_unknown_format(toy_spec: Spec, config: Config) -> None:
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render(toy_spec, config, "yaml")


def test_render_refuses_a_value_with_sql_metacharacters(toy_spec: Spec) -> None:
    """A value read back from a store is validated again before it is rendered."""
    for fmt in ("sql", "conf", "json"):
        with pytest.raises(ValueError, match="not one of"):
            render(toy_spec, {"mode": INJECTION}, fmt)
    assert quote_literal(INJECTION) == "'''; DROP TABLE x; --'"


def test_the_real_values_a_knob_accepts_are_never_metacharacters(postgres_spec: Spec) -> None:
    knob = postgres_spec.knobs["synchronous_commit"]
    rendered = render(postgres_spec, {"synchronous_commit": knob.validate("off")}, "sql")
    assert rendered.splitlines()[0] == """ALTER SYSTEM SET "synchronous_commit" = 'off';"""


_QUOTED = re.compile("'(?:[^']|'')*'" + '|"(?:[^"]|"")*"')
_CONF_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]* = (-?\d+(\.\d+)?|'(?:[^']|'')*')$")
EVIL_NAMES = ['x" = 1; DROP TABLE t; --', "x = 1\nfsync", "x; DROP TABLE t"]


def sql_skeleton(sql: str) -> str:
    """The statement with every quoted identifier and literal removed."""
    return _QUOTED.sub("Q", sql)


def test_sql_skeleton_of_a_safe_rendering(toy_spec: Spec, config: Config) -> None:
    statements = [
        line for line in render(toy_spec, config, "sql").splitlines() if not line.startswith("--")
    ]
    skeleton = sql_skeleton("\n".join(statements))
    assert skeleton == "ALTER SYSTEM SET Q = Q;\n" * len(config) + "SELECT pg_reload_conf();"


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_render_sql_never_pastes_an_unknown_name(toy_spec: Spec, name: str) -> None:
    """A config read back from a store may name anything; a name must not break out."""
    try:
        out = render(toy_spec, {name: "1", "mem": 4096}, "sql")
    except (KeyError, ValueError):
        return  # refusing a knob the spec does not know is fine
    assert sql_skeleton(out) == "ALTER SYSTEM SET Q = Q;\n" * 2 + "SELECT pg_reload_conf();", out


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_render_conf_never_pastes_an_unknown_name(toy_spec: Spec, name: str) -> None:
    try:
        out = render(toy_spec, {name: "1", "mem": 4096}, "conf")
    except (KeyError, ValueError):
        return
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert all(_CONF_LINE.match(line) for line in lines), out


def test_a_composite_config_renders_part_by_part() -> None:
    from autotune.spec import composite_text, parse_spec
    from tests.unit._support import MACHINE, TOY_SPEC

    host = (
        "system: host\napplier: {kind: linux}\nknobs:\n"
        "  vm.swappiness: {type: integer, min: 0, max: 200, default: 60, apply: online}\n"
    )
    spec = parse_spec(
        composite_text([("toy", "toy.yaml", TOY_SPEC), ("host", "host.yaml", host)]), "x", MACHINE
    )
    config = {**spec.defaults(), "host.vm.swappiness": 10}
    conf = render(spec, config, "conf")
    assert conf.startswith("# toy\n") and "\n# host\nvm.swappiness = 10" in conf
    sql = render(spec, config, "sql")
    assert (
        "ALTER SYSTEM SET" in sql
        and "-- host: not set with sql; as conf:\n-- vm.swappiness = 10" in sql
    )
    assert "host.vm.swappiness" in render(spec, config, "json")


def test_dataset_sizes_read_at_a_glance() -> None:
    from autotune.cli.datasets import approx_bytes

    assert approx_bytes(512) == "512B"
    assert approx_bytes(2484572067) == "2.3GB"  # a data directory: no whole unit fits
    assert approx_bytes(160 * 2**20) == "160.0MB"
    assert approx_bytes(3 * 2**40) == "3.0TB"
