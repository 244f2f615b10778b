"""Spec discovery: --knobs-dir, AUTOTUNE_KNOBS_PATH, built-ins, and `autotune systems`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from autotune._resources import known_specs, resolve, search_dirs
from autotune.cli.knobs import systems
from autotune.spec import Machine
from autotune.workloads import load_workload
from tests.unit._support import MACHINE, ROOT

BUILTIN = ROOT / "knobs" / "postgres.yaml"
BUILTINS = sorted(p.stem for p in BUILTIN.parent.glob("*.yaml"))  # others may join postgres
WIDE = {"COLUMNS": "400"}

runner = CliRunner()


def cli() -> typer.Typer:
    """``autotune systems`` as the lead registers it (a command of the main app)."""
    app = typer.Typer()
    app.command("systems")(systems)

    @app.callback()
    def main() -> None:
        pass

    return app


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(cli(), ["systems", *args], env={**WIDE, **(env or {})})


def spec_text(system: str, knobs: int = 1) -> str:
    lines = [f"system: {system}", "knobs:"]
    for i in range(knobs):
        lines += [f"  k{i}:", "    type: integer", "    min: 0", "    max: 10", "    default: 1"]
    return "\n".join(lines) + "\n"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTUNE_KNOBS_PATH", raising=False)
    monkeypatch.delenv("AUTOTUNE_WORKLOADS_PATH", raising=False)
    monkeypatch.setattr(Machine, "local", classmethod(lambda cls: MACHINE))


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Two --knobs-dir directories and two AUTOTUNE_KNOBS_PATH ones, one name in all."""
    d = {name: tmp_path / name for name in ("cli1", "cli2", "env1", "env2")}
    for name, path in d.items():
        write(path, "toy", spec_text(f"toy_{name}"))
    write(d["env2"], "only_env2", spec_text("only_env2", knobs=3))
    monkeypatch.setenv("AUTOTUNE_KNOBS_PATH", os.pathsep.join([str(d["env1"]), str(d["env2"])]))
    return d


# -- resolve ------------------------------------------------------------------------------------


def test_discovery_order_cli_dirs_then_env_path_then_builtin(dirs: dict[str, Path]) -> None:
    assert resolve("knobs", "toy", [dirs["cli1"], dirs["cli2"]]) == dirs["cli1"] / "toy.yaml"
    assert resolve("knobs", "toy", [dirs["cli2"], dirs["cli1"]]) == dirs["cli2"] / "toy.yaml"
    assert resolve("knobs", "toy") == dirs["env1"] / "toy.yaml"
    assert resolve("knobs", "only_env2", [dirs["cli1"]]) == dirs["env2"] / "only_env2.yaml"
    assert resolve("knobs", "postgres", [dirs["cli1"]]) == BUILTIN
    origins = [(d.path, d.origin) for d in search_dirs("knobs", [dirs["cli1"]])]
    assert origins == [
        (dirs["cli1"], "--knobs-dir"),
        (dirs["env1"], "AUTOTUNE_KNOBS_PATH"),
        (dirs["env2"], "AUTOTUNE_KNOBS_PATH"),
        (BUILTIN.parent, "built-in"),
    ]


def test_env_path_skips_empty_and_missing_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good"
    write(good, "mine", spec_text("mine"))
    monkeypatch.setenv(
        "AUTOTUNE_KNOBS_PATH", os.pathsep.join(["", str(tmp_path / "missing"), str(good), ""])
    )
    assert resolve("knobs", "mine") == good / "mine.yaml"
    assert [s.name for s in known_specs()] == sorted(["mine", *BUILTINS])


def test_without_user_dirs_the_builtin_resolves() -> None:
    assert resolve("knobs", "postgres") == BUILTIN
    assert [(d.origin, d.path) for d in search_dirs("knobs")] == [("built-in", BUILTIN.parent)]


def test_paths_resolve_as_given_whatever_the_search_dirs(dirs: dict[str, Path]) -> None:
    path = dirs["cli2"] / "toy.yaml"
    assert resolve("knobs", str(path), [dirs["cli1"]]) == path
    with pytest.raises(FileNotFoundError, match="knob file not found"):
        resolve("knobs", str(dirs["cli1"] / "nosuch.yaml"))


def test_a_user_spec_named_like_a_builtin_wins(dirs: dict[str, Path]) -> None:
    mine = write(dirs["env1"], "postgres", spec_text("postgres", knobs=2))
    assert resolve("knobs", "postgres") == mine
    specs = [s for s in known_specs() if s.name == "postgres"]
    assert [(s.path, s.origin) for s in specs] == [
        (mine, "AUTOTUNE_KNOBS_PATH"),
        (BUILTIN, "built-in"),
    ]
    assert specs[0].shadows == ((BUILTIN, "built-in"),)
    assert specs[0].status == f"ok; shadows built-in {BUILTIN}"
    assert specs[1].shadowed_by == mine
    assert specs[1].status == f"ok; shadowed by {mine}"


def test_resolve_error_lists_the_dirs_searched(dirs: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as err:
        resolve("knobs", "nosuch", [dirs["cli1"], missing])
    message = str(err.value)
    known = ", ".join(sorted({"only_env2", "toy", *BUILTINS}))
    assert message.startswith(f"unknown knob 'nosuch'; known: {known} (searched ")
    for path, origin in [
        (dirs["cli1"], "--knobs-dir"),
        (dirs["env1"], "AUTOTUNE_KNOBS_PATH"),
        (dirs["env2"], "AUTOTUNE_KNOBS_PATH"),
        (BUILTIN.parent, "built-in"),
    ]:
        assert f"{path} ({origin})" in message
    assert f"{missing} (--knobs-dir, missing)" in message
    # The order searched is the order listed.
    assert message.index(str(dirs["cli1"])) < message.index(str(dirs["env1"]))
    assert message.index(str(dirs["env2"])) < message.index(str(BUILTIN.parent))


def test_a_dir_given_twice_is_searched_once(dirs: dict[str, Path]) -> None:
    listed = search_dirs("knobs", [dirs["env1"], dirs["cli1"], dirs["env1"]])
    assert [d.path for d in listed][:3] == [dirs["env1"], dirs["cli1"], dirs["env2"]]
    toy = [s for s in known_specs([dirs["env1"]]) if s.name == "toy"]
    assert [s.path.parent for s in toy] == [dirs["env1"], dirs["env2"]]


def test_workloads_resolve_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = ROOT / "workloads" / "pgbench-tpcb.yaml"
    mine = tmp_path / "wl"
    mine.mkdir()
    (mine / "pgbench-tpcb.yaml").write_text(
        builtin.read_text().replace("name: pgbench-tpcb", "name: my-tpcb")
    )
    monkeypatch.setenv("AUTOTUNE_WORKLOADS_PATH", str(mine))
    assert resolve("workloads", "pgbench-tpcb") == mine / "pgbench-tpcb.yaml"
    assert load_workload("pgbench-tpcb").name == "my-tpcb"
    assert resolve("workloads", "pgbench-tpcb", [tmp_path / "x"]) == mine / "pgbench-tpcb.yaml"
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "pgbench-tpcb.yaml").write_text(builtin.read_text())
    assert resolve("workloads", "pgbench-tpcb", [extra]) == extra / "pgbench-tpcb.yaml"
    assert search_dirs("workloads", [extra])[0].origin == "--workloads-dir"
    with pytest.raises(FileNotFoundError, match=r"AUTOTUNE_WORKLOADS_PATH"):
        resolve("workloads", "nosuch")


# -- known_specs and `autotune systems` -----------------------------------------------------------


def test_known_specs_fields(dirs: dict[str, Path]) -> None:
    specs = [s for s in known_specs([dirs["cli1"]]) if s.origin != "built-in" or s.path == BUILTIN]
    assert [(s.name, s.origin) for s in specs] == [
        ("only_env2", "AUTOTUNE_KNOBS_PATH"),
        ("postgres", "built-in"),
        ("toy", "--knobs-dir"),
        ("toy", "AUTOTUNE_KNOBS_PATH"),
        ("toy", "AUTOTUNE_KNOBS_PATH"),
    ]
    only = specs[0]
    assert (only.system, only.knobs, only.valid, only.error) == ("only_env2", 3, True, None)
    builtin = specs[1]
    assert builtin.system == "postgres" and builtin.knobs is not None and builtin.knobs > 25
    toy = specs[2]
    assert toy.system == "toy_cli1"
    assert [p for p, _ in toy.shadows] == [dirs["env1"] / "toy.yaml", dirs["env2"] / "toy.yaml"]
    assert all(s.shadowed_by == dirs["cli1"] / "toy.yaml" for s in specs[3:])


def test_a_broken_user_spec_shows_its_first_error(dirs: dict[str, Path]) -> None:
    bad = write(
        dirs["cli1"],
        "broken",
        "system: broken\nknobs:\n  a: {type: integer}\n  b: {type: nosuch, default: 1}\n",
    )
    (spec,) = [s for s in known_specs([dirs["cli1"]]) if s.name == "broken"]
    assert not spec.valid
    assert (spec.system, spec.knobs, spec.problems) == ("broken", 2, 2)
    assert spec.error == f"{bad}: knob 'a': field 'default': missing"
    assert spec.status == f"error: {bad}: knob 'a': field 'default': missing (+1 more)"

    result = invoke("--knobs-dir", str(dirs["cli1"]))
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if "broken" in ln)
    assert "knob 'a': field 'default': missing" in line
    assert "--knobs-dir" in line


def test_unreadable_yaml_is_reported_not_raised(tmp_path: Path) -> None:
    write(tmp_path, "junk", "system: [unclosed\n")
    write(tmp_path, "list", "- a\n- b\n")
    specs = {s.name: s for s in known_specs([tmp_path])}
    assert "not valid YAML" in (specs["junk"].error or "")
    assert specs["junk"].system is None and specs["junk"].knobs is None
    assert "must be a mapping" in (specs["list"].error or "")


def test_systems_table(dirs: dict[str, Path]) -> None:
    mine = write(dirs["cli1"], "postgres", spec_text("postgres"))
    result = invoke("--knobs-dir", str(dirs["cli1"]))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for col in ("name", "system", "knobs", "origin", "path", "status"):
        assert col in out.splitlines()[1]
    rows = [ln for ln in out.splitlines() if "postgres" in ln]
    assert str(mine) in rows[0] and f"shadows built-in {BUILTIN}" in rows[0]
    assert str(BUILTIN) in rows[1] and f"shadowed by {mine}" in rows[1]
    only = next(ln for ln in out.splitlines() if "only_env2" in ln)
    assert "AUTOTUNE_KNOBS_PATH" in only and " 3 " in only
    assert f"searched: {dirs['cli1']} (--knobs-dir); {dirs['env1']} (AUTOTUNE_KNOBS_PATH)" in out


def test_systems_json(dirs: dict[str, Path]) -> None:
    write(dirs["cli1"], "broken", "system: broken\nknobs: {}\n")
    result = invoke("--knobs-dir", str(dirs["cli1"]), "--format", "json")
    assert result.exit_code == 0, result.output
    everything = json.loads(result.stdout)
    assert {d["name"] for d in everything if d["origin"] == "built-in"} == set(BUILTINS)
    data = [d for d in everything if d["origin"] != "built-in" or d["path"] == str(BUILTIN)]
    assert [(d["name"], d["origin"]) for d in data][:3] == [
        ("broken", "--knobs-dir"),
        ("only_env2", "AUTOTUNE_KNOBS_PATH"),
        ("postgres", "built-in"),
    ]
    assert set(data[0]) == {
        "name", "system", "knobs", "origin", "path", "valid", "error", "problems",
        "shadows", "shadowed_by",
    }  # fmt: skip
    broken, only, builtin = data[:3]
    assert broken["valid"] is False and "'knobs' must be a non-empty mapping" in broken["error"]
    assert only == {
        "name": "only_env2",
        "system": "only_env2",
        "knobs": 3,
        "origin": "AUTOTUNE_KNOBS_PATH",
        "path": str(dirs["env2"] / "only_env2.yaml"),
        "valid": True,
        "error": None,
        "problems": 0,
        "shadows": [],
        "shadowed_by": None,
    }
    assert builtin["path"] == str(BUILTIN) and builtin["valid"] is True
    toys = [d for d in data if d["name"] == "toy"]
    assert toys[0]["shadows"] == [
        {"path": str(dirs["env1"] / "toy.yaml"), "origin": "AUTOTUNE_KNOBS_PATH"},
        {"path": str(dirs["env2"] / "toy.yaml"), "origin": "AUTOTUNE_KNOBS_PATH"},
    ]


def test_systems_with_only_builtins() -> None:
    result = invoke("--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {d["origin"] for d in data} == {"built-in"}
    assert all(d["valid"] for d in data), data


def test_a_missing_knobs_dir_is_refused(tmp_path: Path) -> None:
    result = invoke("--knobs-dir", str(tmp_path / "nosuch"))
    assert result.exit_code == 2
    assert "does not exist" in result.output
    write(tmp_path, "file", "x: 1\n")
    result = invoke("--knobs-dir", str(tmp_path / "file.yaml"))
    assert result.exit_code == 2
    assert "is a file" in result.output
