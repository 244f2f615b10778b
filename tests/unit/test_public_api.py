"""The package's public names: sorted, importable, and nothing private."""

from __future__ import annotations

import subprocess
import sys

import autotune
import autotune.store


def test_all_is_unique_and_importable() -> None:
    # Its order is ruff's (RUF022), checked by `ruff check`.
    assert len(set(autotune.__all__)) == len(autotune.__all__)
    for name in autotune.__all__:
        assert getattr(autotune, name) is not None
    assert not [n for n in autotune.__all__ if n.startswith("_") and n != "__version__"]


def test_an_agent_host_imports_the_agent_without_the_server_stack() -> None:
    """`import autotune.agent` in a fresh interpreter loads no SQLAlchemy, Alembic or
    FastAPI: an agent host needs the agent, the systems and the workloads only."""
    code = (
        "import sys, autotune.agent, autotune.systems.postgres, autotune.workloads\n"
        "print(sorted({'sqlalchemy', 'alembic', 'fastapi', 'uvicorn'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_public_names_load_on_first_use() -> None:
    assert autotune.Trial is autotune.store.Trial
    assert "Store" in dir(autotune)
    try:
        autotune.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no attribute 'no_such_name'" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
