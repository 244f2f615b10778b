"""autotune export | import: one experiment as one versioned JSON file, between stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from autotune.cli._common import StoreOption, fail, friendly, open_store
from autotune.spec import KnobValueError, Machine, SpecError, parse_spec
from autotune.store import export_experiment, import_experiment, read_export, write_export


@friendly
def export(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="File to write (JSON; gzip-compressed if it ends in .gz).",
            show_default=False,
        ),
    ],
    store: StoreOption = None,
) -> None:
    """Write an experiment, every trial and every analysis to one file, for `autotune import`.

    The file is versioned JSON with sorted keys; nothing recorded is left out.
    """
    with open_store(store) as st:
        doc = export_experiment(st, name)
    write_export(doc, out)
    typer.echo(f"wrote experiment {name!r} ({_count(len(doc['trials']))}) to {out}")


@friendly
def import_(
    file: Annotated[
        Path, typer.Argument(help="A file written by `autotune export` (.json or .json.gz).")
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Import under this name. Default: the recorded one."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Add an exported experiment to the store, exactly as recorded: all of it or nothing.

    An existing name is refused (give --name). A trial that was leased when it
    was exported comes in as pending, so an agent of this store can run it.
    """
    doc = read_export(file)
    problems = config_problems(doc, str(file))
    if problems:
        fail(
            "\n".join(problems[:20])
            + (f"\n… and {len(problems) - 20} more" if problems[20:] else "")
        )
    with open_store(store) as st:
        experiment = import_experiment(st, doc, name)
        where = st.safe_url
    typer.echo(
        f"imported experiment {experiment.name!r} ({_count(len(doc['trials']))}) "
        f"from {file} into {where}"
    )


def config_problems(doc: dict[str, Any], where: str) -> list[str]:
    """Every trial config of an export checked against its own spec, on its machine: a
    config outside the spec's knobs or bounds would be applied by a resume or replay."""
    experiment = doc["experiment"]
    machine = experiment["settings"].get("machine")
    try:
        spec = parse_spec(
            experiment["spec"]["content"],
            experiment["spec"]["path"],
            Machine(**machine) if isinstance(machine, dict) else None,
        )
    except (SpecError, TypeError) as exc:
        return [f"{where}: experiment.spec: {exc}"]
    problems = []
    for i, trial in enumerate(doc["trials"]):
        for knob, value in trial["config"].items():
            at = f"{where}: trials[{i}].config.{knob}"
            if knob not in spec.knobs:
                problems.append(f"{at}: not a knob of the experiment's spec")
                continue
            try:
                spec.knobs[knob].validate(value)
            except KnobValueError as exc:
                problems.append(f"{at}: {exc}")
    return problems


def _count(n: int) -> str:
    return f"{n} trial" + ("" if n == 1 else "s")
