"""autotune baseline pgtune: the config a rule-based tool would give, to compare against."""

from __future__ import annotations

import re
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer

from autotune._resources import resolve
from autotune.baseline import DB_SIZES, DB_TYPES, PG_VERSIONS, STORAGES, PgtuneInput, pgtune_config
from autotune.cli._common import err, fail, friendly
from autotune.cli._format import render
from autotune.spec import Machine, Unit, format_quantity, load_spec, parse_quantity
from autotune.tuner import pgtune_db_type

SOURCE = "https://github.com/le0pard/pgtune"

app = typer.Typer(
    help="Rule-based baseline configs (pgtune) to compare tuned configs against.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Rule-based baseline configs (pgtune) to compare tuned configs against."""


class BaselineFormat(StrEnum):
    conf = "conf"
    sql = "sql"
    json = "json"


_BYTES = Unit.parse("B")


def parse_memory(text: str) -> int:
    """``8GB``, ``512MB``, ``1.5GB`` in bytes; a bare number is refused as ambiguous."""
    if re.fullmatch(r"\s*[\d.]+\s*", text):
        raise ValueError(f"--memory {text!r} needs a unit, e.g. 8GB or 512MB")
    try:
        return int(parse_quantity(text, _BYTES))
    except ValueError as exc:
        raise ValueError(f"--memory {text!r}: {exc}") from None


@app.command()
@friendly
def pgtune(
    db_type: Annotated[
        str | None,
        typer.Option(
            "--db-type",
            "--pgtune-type",
            help=f"One of: {', '.join(DB_TYPES)}. Default: by --workload (oltp for pgbench, "
            "dw for a query set), else mixed, pgtune's own default.",
            show_default=False,
        ),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            help="The workload to tune for (a name or file): picks the db type as `verify` "
            "and `tune` do."
        ),
    ] = None,
    storage: Annotated[str, typer.Option(help=f"One of: {', '.join(STORAGES)}.")] = "ssd",
    connections: Annotated[
        int | None,
        typer.Option(help="max_connections. Default: pgtune's for the db type (20 to 300)."),
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="Total memory, e.g. 8GB. Default: this host's.")
    ] = None,
    cpus: Annotated[int | None, typer.Option(help="CPU count. Default: this host's.")] = None,
    db_size: Annotated[
        str,
        typer.Option(
            "--db-size",
            help=f"Data size against RAM, one of: {', '.join(DB_SIZES)} (under 1x, 1x to 3x, "
            "over 3x). It scales work_mem and random_page_cost.",
        ),
    ] = "mid_ram",
    pg_version: Annotated[
        int,
        typer.Option(
            "--pg-version", help=f"PostgreSQL major version, {PG_VERSIONS[0]} to {PG_VERSIONS[-1]}."
        ),
    ] = 15,
    system: Annotated[
        str, typer.Option(help="Knob spec: a built-in name or a .yaml file.")
    ] = "postgres",
    format: Annotated[BaselineFormat, typer.Option("--format", "-f")] = BaselineFormat.conf,
) -> None:
    """Print pgtune's settings for a machine as a config of the spec, like `autotune best`.

    Only the knobs pgtune sets are printed; notes on what did not carry over
    (clipped to the spec's bounds, or not in the spec) go to stderr.
    """
    host = Machine.local()
    if db_type is None:
        if workload is None:
            db_type, why = "mixed", "pgtune's default"
        else:
            try:
                content = resolve("workloads", workload).read_text()
            except (FileNotFoundError, OSError) as exc:
                fail(f"--workload: {exc}")
                return
            db_type, why = pgtune_db_type(content), f"for workload {workload}"
    else:
        why = "--db-type"
    err.print(f"pgtune db type: {db_type} ({why})", markup=False, soft_wrap=True)
    try:
        inp = PgtuneInput(
            memory_bytes=host.memory_bytes if memory is None else parse_memory(memory),
            cpus=host.cpus if cpus is None else cpus,
            db_type=db_type,
            storage=storage,
            connections=connections,
            pg_version=pg_version,
            db_size=db_size,
        )
    except ValueError as exc:
        fail(str(exc))
        return
    # Bounds such as "25% memory" must be those of the machine pgtune is tuning for.
    spec = load_spec(resolve("knobs", system), Machine(inp.memory_bytes, inp.cpus))
    try:
        result = pgtune_config(spec, inp)
    except ValueError as exc:
        fail(str(exc))
        return
    for note in result.notes:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    chosen = {name: result.config[name] for name in result.applied}
    if format is BaselineFormat.json:
        meta = {
            "baseline": "pgtune",
            "source": SOURCE,
            "input": {**asdict(inp), "connections": inp.max_connections},
            "pgtune": result.settings,
            "notes": result.notes,
        }
        typer.echo(render(spec, chosen, "json", meta))
        return
    mark = "#" if format is BaselineFormat.conf else "--"
    header = (
        f"{mark} pgtune ({SOURCE}): {format_quantity(inp.memory_bytes, _BYTES)} memory, "
        f"{inp.cpus} CPUs, {inp.db_type}, {inp.storage}, {inp.max_connections} connections, "
        f"data {inp.db_size}, PostgreSQL {inp.pg_version}"
    )
    typer.echo(header + "\n" + render(spec, chosen, format.value))
