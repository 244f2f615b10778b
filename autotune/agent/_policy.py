"""What an agent's owner lets the tuner service run on the agent's host.

Whoever holds the service's admin token submits experiments, and an experiment
carries a knob spec and a workload. Both can run things: a generic spec starts
a server program and runs its reload commands, a ``command`` workload runs any
program, and SQL (a ``sql-set`` workload, a pgbench script) runs as a superuser
of the target, where ``COPY … TO PROGRAM`` reaches the shell. So an agent runs
only what its own command line allows:

- specs it could load itself (built in, or on its own ``AUTOTUNE_KNOBS_PATH``)
  and the files given with ``--allow-spec``, compared by content;
- workloads it could load itself, compared by content with the files they name,
  and pgbench's built-in scripts with any scale, clients and length;
- SQL from the server (``sql-set`` workloads, pgbench scripts) with ``--allow-sql``;
- ``command`` workloads whose programs, resolved on PATH, are named with
  ``--allow-command``; pgbench's ``\\shell`` needs the shell allowed.

``autotune tune`` runs no policy: there the user is the host's owner.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from autotune.workloads import WorkloadDef


class Refused(Exception):
    """A trial this agent's owner has not allowed; the message names the rule."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_program(name: str) -> str | None:
    """The real path of the program ``name`` runs, as PATH finds it; None if not found."""
    found = shutil.which(name)
    return os.path.realpath(found) if found else None


# pgbench meta-commands that run a shell command line (pgbench passes them to system()).
_SHELL = re.compile(r"^\s*\\(shell|setshell)\b", re.MULTILINE)


@dataclass(frozen=True)
class AgentPolicy:
    """The specs, workloads, programs and SQL an agent runs; everything else is refused."""

    specs: frozenset[str] = frozenset()  # text_hash of each allowed spec file
    workloads: frozenset[str] = frozenset()  # WorkloadDef.content_hash of each allowed one
    commands: frozenset[str] = frozenset()  # resolved program paths
    sql: bool = False

    @classmethod
    def of(
        cls,
        spec_texts: Iterable[str],
        workloads: Iterable[WorkloadDef],
        commands: Iterable[str] = (),
        sql: bool = False,
    ) -> AgentPolicy:
        """A policy from spec texts, loaded workloads and program names (resolved here).

        Raises ValueError for a program not on PATH: an allowance that can never
        match is a typo the owner should hear about at start.
        """
        programs = set()
        for name in commands:
            path = resolve_program(name)
            if path is None:
                raise ValueError(f"--allow-command {name!r}: no such program on PATH")
            programs.add(path)
        return cls(
            specs=frozenset(text_hash(t) for t in spec_texts),
            workloads=frozenset(w.content_hash for w in workloads),
            commands=frozenset(programs),
            sql=sql,
        )

    def check(self, spec_path: str, spec_text: str, workload: WorkloadDef) -> None:
        """Raise Refused unless both the spec and the workload are allowed."""
        self._check_spec(spec_path, spec_text)
        self._check_workload(workload)

    def _check_spec(self, path: str, text: str) -> None:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None
        parts = doc.get("parts") if isinstance(doc, dict) else None
        # A composite spec carries its parts' files verbatim: each must be allowed.
        texts = (
            {str(k): str(v) for k, v in parts.items()} if isinstance(parts, dict) else {"": text}
        )
        for part, body in texts.items():
            if text_hash(body) not in self.specs:
                what = f"spec {path}" + (f" (part {part})" if part else "")
                raise Refused(
                    f"this agent does not run {what}: it is not a spec this agent has or was "
                    "given with --allow-spec FILE (a spec can start programs and set any "
                    "server setting)"
                )

    def _check_workload(self, workload: WorkloadDef) -> None:
        if workload.content_hash in self.workloads:
            return
        name = f"workload {workload.name}"
        if workload.kind == "pgbench":
            script = workload.params.get("script")
            if script is None:
                return  # a built-in pgbench script: pgbench's own SQL
            if not self.sql:
                raise Refused(
                    f"this agent does not run {name}: its pgbench script is SQL from the "
                    "server; the agent's owner allows that with --allow-sql"
                )
            if any(_SHELL.search(t) for t in workload.files.values()):
                self._check_program(name, "sh", "its pgbench script's \\shell")
            return
        if workload.kind == "sql-set":
            if not self.sql:
                raise Refused(
                    f"this agent does not run {name}: a sql-set is SQL from the server; "
                    "the agent's owner allows that with --allow-sql"
                )
            return
        if workload.kind == "command":
            commands = [("setup", a) for a in workload.params.get("setup_argvs", [])]
            commands.append(("run", workload.params.get("run_argv")))
            for what, argv in commands:
                if argv:
                    self._check_program(name, str(argv[0]), f"its {what}")
            return
        raise Refused(f"this agent does not run {name}: kind {workload.kind!r} is not known to it")

    def _check_program(self, name: str, program: str, what: str) -> None:
        path = None if "{" in program else resolve_program(program)
        if path is None or path not in self.commands:
            shown = program if path is None else f"{program} ({path})"
            raise Refused(
                f"this agent does not run {name}: {what} runs {shown}, which the agent's "
                "owner has not allowed with --allow-command PROGRAM"
            )
