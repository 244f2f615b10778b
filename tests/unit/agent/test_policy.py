"""An agent runs only the specs, workloads, programs and SQL its owner allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.agent import AgentPolicy, Refused, resolve_program
from autotune.spec import composite_text
from autotune.workloads import WorkloadDef, parse_workload
from tests.unit._support import ROOT

POSTGRES = (ROOT / "knobs" / "postgres.yaml").read_text()
LINUX = (ROOT / "knobs" / "linux.yaml").read_text()
HEAD = "name: w\nsystem: postgres\n"
PGBENCH = HEAD + "kind: pgbench\nbuiltin: tpcb-like\nobjective: {metric: tps}\n"


def workload(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> WorkloadDef:
    for name, body in (files or {}).items():
        (tmp_path / name).write_text(body)
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return parse_workload(text, path)


def command(tmp_path: Path, program: str) -> WorkloadDef:
    return workload(
        tmp_path,
        HEAD + f"kind: command\nrun: [{program}, -c, 'id > out']\n"
        "metrics: {t: {regex: 't=(\\\\d+)'}}\nobjective: {metric: t}\n",
    )


def test_a_spec_is_run_only_if_the_agent_has_it_or_was_given_it(tmp_path: Path) -> None:
    policy = AgentPolicy.of([POSTGRES], [])
    ok = workload(tmp_path, PGBENCH)
    policy.check("knobs/postgres.yaml", POSTGRES, ok)  # byte for byte: allowed
    changed = POSTGRES.replace("max: 25% memory", "max: 90% memory", 1)
    with pytest.raises(Refused, match=r"does not run spec my\.yaml: .* --allow-spec FILE"):
        policy.check("my.yaml", changed, ok)
    AgentPolicy.of([POSTGRES, changed], []).check("my.yaml", changed, ok)


def test_each_part_of_a_composite_spec_must_be_allowed(tmp_path: Path) -> None:
    joint = composite_text([("postgres", "postgres.yaml", POSTGRES), ("linux", "l.yaml", LINUX)])
    ok = workload(tmp_path, PGBENCH)
    AgentPolicy.of([POSTGRES, LINUX], []).check("postgres+linux", joint, ok)
    with pytest.raises(Refused, match=r"spec postgres\+linux \(part linux\)"):
        AgentPolicy.of([POSTGRES], []).check("postgres+linux", joint, ok)


def test_sql_from_the_server_needs_allow_sql(tmp_path: Path) -> None:
    script = workload(
        tmp_path,
        HEAD + "kind: pgbench\nscript: s.sql\nobjective: {metric: tps}\n",
        {"s.sql": "COPY (SELECT 1) TO PROGRAM 'id > /tmp/x';\n"},
    )
    with pytest.raises(Refused, match=r"pgbench script is SQL from the server.*--allow-sql"):
        AgentPolicy.of([POSTGRES], []).check("p", POSTGRES, script)
    AgentPolicy.of([POSTGRES], [], sql=True).check("p", POSTGRES, script)
    queries = workload(
        tmp_path,
        HEAD + "kind: sql-set\nsetup: setup.sql\nqueries: q.sql\n"
        "objective: {metric: latency_avg_ms, direction: minimize}\n",
        {"setup.sql": "SELECT 1;\n", "q.sql": "SELECT 1;\n"},
    )
    with pytest.raises(Refused, match="a sql-set is SQL from the server"):
        AgentPolicy.of([POSTGRES], []).check("p", POSTGRES, queries)
    AgentPolicy.of([POSTGRES], [], sql=True).check("p", POSTGRES, queries)


def test_pgbench_shell_needs_the_shell_allowed(tmp_path: Path) -> None:
    script = workload(
        tmp_path,
        HEAD + "kind: pgbench\nscript: s.sql\nobjective: {metric: tps}\n",
        {"s.sql": "\\setshell x echo 1\nSELECT :x;\n"},
    )
    with pytest.raises(Refused, match=r"\\shell runs sh"):
        AgentPolicy.of([POSTGRES], [], sql=True).check("p", POSTGRES, script)
    AgentPolicy.of([POSTGRES], [], ["sh"], sql=True).check("p", POSTGRES, script)


def test_a_command_runs_only_an_allowed_program(tmp_path: Path) -> None:
    shell = command(tmp_path, "/bin/sh")
    real = resolve_program("/bin/sh")
    with pytest.raises(Refused, match=rf"its run runs /bin/sh \({real}\).*--allow-command"):
        AgentPolicy.of([POSTGRES], []).check("p", POSTGRES, shell)
    with pytest.raises(Refused, match="--allow-command"):  # another program allowed
        AgentPolicy.of([POSTGRES], [], ["true"]).check("p", POSTGRES, shell)
    # Allowed by name or by path: both resolve to the same program.
    AgentPolicy.of([POSTGRES], [], ["sh"]).check("p", POSTGRES, shell)
    AgentPolicy.of([POSTGRES], [], [real or ""]).check("p", POSTGRES, shell)


def test_a_workload_the_agent_has_itself_is_allowed_whatever_its_kind(tmp_path: Path) -> None:
    own = command(tmp_path, "/bin/sh")
    AgentPolicy.of([POSTGRES], [own]).check("p", POSTGRES, own)
    script = HEAD + "kind: pgbench\nscript: s.sql\nobjective: {metric: tps}\n"
    mine = workload(tmp_path, script, {"s.sql": "SELECT 1;\n"})
    AgentPolicy.of([POSTGRES], [mine]).check("p", POSTGRES, mine)
    # The same workload file naming a changed script is another workload.
    changed = workload(tmp_path, script, {"s.sql": "COPY (SELECT 1) TO PROGRAM 'id';\n"})
    with pytest.raises(Refused, match="--allow-sql"):
        AgentPolicy.of([POSTGRES], [mine]).check("p", POSTGRES, changed)


def test_an_allowance_that_can_never_match_is_an_error() -> None:
    with pytest.raises(ValueError, match="--allow-command 'no-such-prog': no such program"):
        AgentPolicy.of([], [], ["no-such-prog"])
