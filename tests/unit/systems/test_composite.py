"""A composite spec and system: namespaced knobs, parts applied in order, restored in reverse."""

from __future__ import annotations

from typing import Any

import pytest

from autotune.spec import Config, Machine, Spec, SpecError, composite_text, parse_spec
from autotune.systems import ApplyReport, ConfigFailed, System, SystemError_
from autotune.systems import _registry as registry
from autotune.systems._composite import CompositeSystem
from autotune.systems._registry import Target, applier_kind, make_system, register
from tests.unit._support import MACHINE, TOY_SPEC

HOST = """system: host
applier: {kind: fake-host}
knobs:
  vm.dirty_ratio: {type: integer, min: 1, max: 100, default: 20, apply: online}
  vm.dirty_background_ratio: {type: integer, min: 1, max: 100, default: 10, apply: online}
constraints:
  - vm.dirty_background_ratio < vm.dirty_ratio
groups:
  dirty: [vm.dirty_ratio, vm.dirty_background_ratio]
"""


def joint(machine: Machine = MACHINE) -> Spec:
    text = composite_text([("toy", "toy.yaml", TOY_SPEC), ("host", "host.yaml", HOST)])
    return parse_spec(text, "toy+host", machine)


def test_a_composite_spec_namespaces_knobs_constraints_and_groups() -> None:
    spec = joint()
    toy = parse_spec(TOY_SPEC, "toy.yaml", MACHINE)
    assert spec.system == "toy+host"
    assert list(spec.knobs) == [f"toy.{n}" for n in toy.knobs] + [
        "host.vm.dirty_ratio",
        "host.vm.dirty_background_ratio",
    ]
    assert spec.knobs["host.vm.dirty_ratio"].name == "host.vm.dirty_ratio"
    assert spec.groups["host.dirty"] == ("host.vm.dirty_ratio", "host.vm.dirty_background_ratio")
    assert spec.violated({}, MACHINE) == []
    broken = spec.violated({"host.vm.dirty_background_ratio": 30}, MACHINE)
    assert broken == ["host: vm.dirty_background_ratio < vm.dirty_ratio"]
    assert [ns for ns, _ in spec.parts] == ["toy", "host"]
    assert spec.drives("toy") and spec.drives("host") and spec.drives("toy+host")
    assert not spec.drives("redis")
    assert applier_kind(spec) == "composite"
    # The stored text parses back to the same spec: what a remote agent does.
    again = parse_spec(spec.source, spec.path, MACHINE)
    assert again.content_hash == spec.content_hash and list(again.knobs) == list(spec.knobs)


def test_a_broken_part_or_composite_is_one_clear_error_each() -> None:
    text = composite_text([("toy", "toy.yaml", TOY_SPEC), ("host", "host.yaml", "system: [")])
    with pytest.raises(SpecError) as err:
        parse_spec(text, "toy+host", MACHINE)
    assert any(line.startswith("toy+host#host: not valid YAML") for line in err.value.problems)
    with pytest.raises(SpecError) as err:
        parse_spec("system: a+b\nparts: {a: 'system: a'}\nknobs: {}\n", "x", MACHINE)
    assert "unknown field 'knobs' in a composite spec" in err.value.problems[0]


class Part(System):
    """A system that records what happens to it, in one shared log."""

    def __init__(self, spec: Spec, name: str, log: list[str], fail_on: Any = None) -> None:
        self.spec, self.name, self.log, self.fail_on = spec, name, log, fail_on
        self.applied: Config = {}

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def apply(self, config: Config) -> ApplyReport:
        if self.fail_on is not None and self.fail_on in config.values():
            self.log.append(f"refuse {self.name}")
            raise ConfigFailed(f"{self.name} refused", "boom")
        self.applied = dict(config)
        self.log.append(f"apply {self.name} {sorted(config)}")
        return ApplyReport(action="restart" if self.name == "toy" else "online", restart_s=1.0)

    def mark_good(self) -> None:
        self.log.append(f"good {self.name}")

    def healthy(self) -> bool:
        return True

    def rollback(self) -> None:
        self.log.append(f"rollback {self.name}")

    def restore(self, config: Config | None = None) -> None:
        self.log.append(f"restore {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_parts_apply_in_order_and_restore_and_stop_in_reverse() -> None:
    spec = joint()
    log: list[str] = []
    toy, host = Part(spec.parts[0][1], "toy", log), Part(spec.parts[1][1], "host", log, fail_on=99)
    system = CompositeSystem(spec, [("toy", toy), ("host", host)])
    system.start()
    config = spec.defaults()
    report = system.apply(config)
    assert report.action == "restart" and report.restart_s == 2.0
    assert toy.applied == {k.removeprefix("toy."): v for k, v in config.items() if k[:4] == "toy."}
    assert host.applied == {"vm.dirty_ratio": 20, "vm.dirty_background_ratio": 10}
    with pytest.raises(ConfigFailed):
        system.apply({**config, "host.vm.dirty_ratio": 99})
    assert log[-2:] == ["refuse host", "rollback toy"]  # the part before it follows it back
    system.restore()
    system.stop()
    assert log[-4:] == ["restore host", "restore toy", "stop host", "stop toy"]
    assert system.find(Part) is toy
    with pytest.raises(SystemError_, match=r"'nope\.x' is not in a part"):
        system.apply({"nope.x": 1})


def test_the_registry_builds_a_composite_from_its_parts_appliers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []

    def fake(spec: Spec, target: Target) -> System:
        built.append(spec.system)
        return Part(spec, spec.system, [])

    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    register("fake-host", fake)
    register("fake-toy", fake)
    toy = TOY_SPEC.replace("applier: postgres", "applier: fake-toy", 1)
    assert "applier: fake-toy" in toy
    spec = parse_spec(
        composite_text([("toy", "toy.yaml", toy), ("host", "host.yaml", HOST)]), "x", MACHINE
    )
    system = make_system(spec, Target())
    assert isinstance(system, CompositeSystem) and built == ["toy", "host"]


class Found(Part):
    """A part that ran ``found`` before the session (a host, an existing server)."""

    def __init__(self, spec: Spec, name: str, found: Config | None) -> None:
        super().__init__(spec, name, [])
        self.found = found

    def current(self) -> Config | None:
        return self.found


def test_the_composites_current_config_is_its_parts_under_their_names() -> None:
    spec = joint()
    toy, host = spec.parts[0][1], spec.parts[1][1]
    made_fresh = CompositeSystem(
        spec, [("toy", Found(toy, "toy", None)), ("host", Part(host, "host", []))]
    )
    assert made_fresh.current() is None  # every part made fresh: the spec's defaults
    system = CompositeSystem(
        spec,
        [("toy", Found(toy, "toy", None)), ("host", Found(host, "host", {"vm.dirty_ratio": 40}))],
    )
    assert system.current() == {"host.vm.dirty_ratio": 40}
