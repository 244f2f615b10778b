"""Every `autotune …` command the READMEs show exists, with every option it shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from autotune.cli import app

ROOT = Path(__file__).resolve().parents[3]
DOCS = [
    ROOT / "README.md",
    ROOT / "experiments" / "README.md",
    ROOT / "knobs" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _commands(text: str) -> list[str]:
    """The autotune command lines of a Markdown text: in sh blocks (continuations
    joined) and in inline code."""
    found = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            found += [m for m in re.findall(r"\bautotune (.*?)(?:$|[;&|)])", line)]
    found += re.findall(r"`autotune ([^`]+)`", text)
    return found


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command the words name (subcommands walked as far as they go)."""
    command: Any = typer.main.get_command(app)
    path = []
    for word in words:
        group = getattr(command, "commands", None)
        if group is None or word not in group:
            break
        command = group[word]
        path.append(word)
    return command, path


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


CASES = [(doc.name, line) for doc in DOCS if doc.exists() for line in _commands(doc.read_text())]


def test_the_readmes_show_commands() -> None:
    assert len(CASES) > 40


@pytest.mark.parametrize(("doc", "line"), CASES)
def test_a_documented_command_and_its_options_exist(doc: str, line: str) -> None:
    words = line.split()
    command, path = _resolve(words)
    assert path or words[0].startswith("-"), f"{doc}: `autotune {line}` names no command"
    unknown = sorted(set(OPTION.findall(line)) - _options(command))
    assert not unknown, f"{doc}: `autotune {line}`: {' '.join(path)} has no {', '.join(unknown)}"
