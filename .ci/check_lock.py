"""pyproject.toml against constraints.txt, and pyproject's lower bounds as pins.

    python .ci/check_lock.py check    # in a venv made with the README's test command
    python .ci/check_lock.py lowest   # print each runtime dependency at its lower bound

``check`` fails, one line per problem, when the lock and pyproject.toml disagree:
a dependency the lock does not pin, a pin outside pyproject's range, a dev tool
(a dev requirement that is not a benchmark competitor) not pinned exactly with
``==`` in pyproject.toml, a lock entry nothing
installs (stale), or an installed package the lock does not pin (the lock is
incomplete, so the install drifts with the day). Refresh with ``bash .ci/lock``.

``lowest`` turns every ``>=X`` of ``[project.dependencies]`` into ``==X``, for
a constraints file that tests the lower bounds users are promised; the test
tools it also needs (TEST_TOOLS) come at the lock's versions.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"
# Installed with every venv, never pinned by pip freeze.
UNPINNED = {"pip", "setuptools", "wheel", "autotune"}


def _pyproject() -> dict:  # type: ignore[type-arg]
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise SystemExit(f"pyproject.toml: cannot read requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


# What the lower-bound run installs besides autotune, at the lock's versions.
TEST_TOOLS = ("pytest", "pytest-timeout", "hypothesis")


def lowest() -> list[str]:
    locked = _lock()
    pins = [f"{tool}=={locked[tool]}" for tool in TEST_TOOLS]
    for req in _pyproject()["project"]["dependencies"]:
        found = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*(>=|==)\s*([0-9][A-Za-z0-9.]*)\s*", req)
        if found is None:
            raise SystemExit(f"pyproject.toml: {req!r} needs a lower bound (>=X) or a pin (==X)")
        pins.append(f"{found.group(1)}=={found.group(3)}")
    return pins


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version:
            raise SystemExit(f"{LOCK.name}:{number}: not a name==version pin: {line!r}")
        pins[_name(name)] = version.strip()
    return pins


def agreement(project: dict, pins: dict[str, str]) -> list[str]:  # type: ignore[type-arg]
    """Where pyproject.toml's requirements and the lock's pins disagree."""
    from packaging.requirements import Requirement

    problems = []
    groups = {"[project.dependencies]": project["dependencies"]}
    groups["the dev extra"] = project["optional-dependencies"]["dev"]
    for where, requirements in groups.items():
        for text in requirements:
            req = Requirement(text)
            name = _name(req.name)
            if name not in pins:
                problems.append(f"{LOCK.name} has no pin for {req.name} ({where}: {text!r})")
            elif not req.specifier.contains(pins[name], prereleases=True):
                problems.append(
                    f"{LOCK.name} pins {req.name}=={pins[name]}, outside {where}'s {text!r}"
                )
    extras = project["optional-dependencies"]
    bench = {_name(Requirement(t).name) for t in extras.get("bench", [])}
    for text in groups["the dev extra"]:
        req = Requirement(text)
        exact = [s for s in req.specifier if s.operator == "=="]
        if _name(req.name) not in bench and not exact:
            problems.append(f"pyproject.toml: dev tool {text!r} must be pinned exactly (==)")
    return problems


def drift(installed: dict[str, str], pins: dict[str, str]) -> list[str]:
    """Where what is installed and the lock differ, either way."""
    problems = []
    for name, version in sorted(installed.items()):
        if name in UNPINNED:
            continue
        if name not in pins:
            problems.append(f"{name}=={version} is installed but {LOCK.name} does not pin it")
        elif pins[name] != version:
            problems.append(f"{name}=={version} is installed but {LOCK.name} pins {pins[name]}")
    for name in sorted(set(pins) - set(installed)):
        problems.append(f"{LOCK.name} pins {name}=={pins[name]}, which nothing installs (stale)")
    return problems


def check() -> list[str]:
    from importlib.metadata import distributions

    pins = _lock()
    installed = {_name(d.metadata["Name"]): d.version for d in distributions()}
    return agreement(_pyproject()["project"], pins) + drift(installed, pins)


def main() -> int:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "lowest":
        print("\n".join(lowest()))
        return 0
    if what == "check":
        problems = check()
        for problem in problems:
            print(f"lock: {problem}", file=sys.stderr)
        if problems:
            print("lock: refresh it with: bash .ci/lock", file=sys.stderr)
            return 1
        print(f"lock: {LOCK.name} and pyproject.toml agree; the venv is exactly the lock")
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
