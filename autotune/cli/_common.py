"""What every command shares: the --store option, error reporting, consoles."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from autotune._resources import resolve
from autotune.spec import Machine, Spec, SpecError, composite_text, load_spec, parse_spec
from autotune.store import Store, StoreError, default_url
from autotune.systems import System, SystemError_, Target, make_system
from autotune.tuner import TuningError

console = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Results store URL (SQLAlchemy). Default: $AUTOTUNE_STORE, "
        "then sqlite:///./.autotune/autotune.db",
        show_default=False,
    ),
]

DsnOption = Annotated[
    str | None, typer.Option(help="Tune an existing server instead of a managed sandbox.")
]
RestartCommandOption = Annotated[
    str | None, typer.Option(help="With --dsn: command that restarts the server.")
]
DataDirOption = Annotated[
    Path | None, typer.Option(help="With --dsn: the server's data directory, for rollback.")
]
KnobsDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--knobs-dir",
        exists=True,
        file_okay=False,
        dir_okay=True,
        show_default=False,
        help="A directory of knob specs (<name>.yaml), searched before $AUTOTUNE_KNOBS_PATH "
        "and the built-in specs. Repeatable; the first match wins.",
    ),
]


def load_system_spec(
    system: str, machine: Machine | None = None, knobs_dirs: Sequence[Path] = ()
) -> Spec:
    """``--system``: a spec name (``--knobs-dir``, ``AUTOTUNE_KNOBS_PATH``, built-in), a
    spec file, or parts joined by ``+`` (``postgres+linux``) for one joint space."""
    if "+" not in system or Path(system).suffix in (".yaml", ".yml"):
        return load_spec(resolve("knobs", system, knobs_dirs), machine)
    parts: list[tuple[str, str, str]] = []
    for name in system.split("+"):
        path = resolve("knobs", name.strip(), knobs_dirs)
        part = load_spec(path, machine)
        if any(ns == part.system for ns, _, _ in parts):
            raise SpecError([f"--system {system}: {part.system!r} appears twice"])
        parts.append((part.system, str(path), path.read_text()))
    return parse_spec(composite_text(parts), system, machine)


def system_factory(target: Target) -> Callable[[Spec], System]:
    """What the agent loop needs to build its system: the spec's applier, at ``target``."""

    def make(spec: Spec) -> System:
        return make_system(spec, target)

    return make


def postgres_target(
    dsn: str | None, restart_command: str | None, data_dir: Path | None
) -> Callable[[Spec], System]:
    """A managed sandbox, or the server at ``dsn``: the target options every command takes."""
    return system_factory(Target(dsn=dsn, restart_command=restart_command, data_dir=data_dir))


F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def friendly(func: F) -> F:
    """Turn the errors users can fix into one clear message and a non-zero exit."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as exc:
            for line in exc.problems:
                err.print(line, markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except (StoreError, TuningError, SystemError_, FileNotFoundError) as exc:
            excerpt = getattr(exc, "log_excerpt", "")
            if excerpt:
                err.print(excerpt, markup=False)
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


@contextmanager
def open_store(url: str | None) -> Iterator[Store]:
    store = Store(url or default_url())
    try:
        yield store
    finally:
        store.close()


def is_tty() -> bool:
    return sys.stdout.isatty()
