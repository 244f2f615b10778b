"""The README's two Quickstart commands, one per line: the tuning session, then the tests.

``.ci/run`` runs them exactly as written, so a command that drifts from what CI
does fails CI instead of a newcomer.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_commands(text: str) -> list[str]:
    section = re.search(r"^## Quickstart\n(.*?)(?=^## )", text, re.M | re.S)
    if section is None:
        raise SystemExit(f"{README}: no '## Quickstart' section")
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    commands = [
        " ".join(line.strip().removesuffix("\\") for line in block.splitlines()) for block in blocks
    ]
    if len(commands) != 2 or "autotune tune" not in commands[0] or "pytest" not in commands[1]:
        raise SystemExit(
            f"{README}: Quickstart must hold two sh blocks, the tuning session then the tests"
        )
    return commands


if __name__ == "__main__":
    print("\n".join(quickstart_commands(README.read_text())))
    sys.exit(0)
