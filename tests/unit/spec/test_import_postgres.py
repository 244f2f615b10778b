"""`autotune knobs import postgres`: pg_settings rows -> a knob spec that loads.

The rows are hand-made copies of PostgreSQL 15's pg_settings (values as the
server reports them: text, in the setting's unit), so no server is needed.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autotune.cli import app
from autotune.spec import Spec, load_spec, parse_spec
from autotune.systems import SystemError_
from autotune.systems.postgres import _import
from autotune.systems.postgres._import import import_settings, spec_from_settings
from autotune.systems.postgres._import_rules import APPLY_BY_CONTEXT, NOT_TUNABLE, UNSAFE
from tests.unit._support import MACHINE

runner = CliRunner()
WHEN = datetime.datetime(2024, 5, 6, 7, 8, tzinfo=datetime.UTC)
VERSION = "15.18 (Debian 15.18-0+deb12u1)"
BIG_REAL = "1.79769e+308"
INT_MAX = "2147483647"


def row(
    name: str,
    vartype: str,
    context: str = "user",
    *,
    unit: str | None = None,
    min_val: str | None = None,
    max_val: str | None = None,
    boot_val: str | None = None,
    enumvals: list[str] | None = None,
    category: str = "Query Tuning / Planner Cost Constants",
    short_desc: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "vartype": vartype,
        "context": context,
        "unit": unit,
        "min_val": min_val,
        "max_val": max_val,
        "boot_val": boot_val,
        "enumvals": enumvals,
        "category": category,
        "short_desc": short_desc or f"Sets {name}.",
    }


MEM = "Resource Usage / Memory"
WAL = "Write-Ahead Log / Settings"
CKPT = "Write-Ahead Log / Checkpoints"
DEV = "Developer Options"
LOG_WHEN = "Reporting and Logging / When to Log"

# Copies of PostgreSQL 15.18 pg_settings rows: every vartype, unit and context.
ROWS: list[dict[str, Any]] = [
    # integer, every unit PostgreSQL uses
    row("shared_buffers", "integer", "postmaster", unit="8kB", min_val="16",
        max_val="1073741823", boot_val="16384", category=MEM),
    row("work_mem", "integer", unit="kB", min_val="64", max_val=INT_MAX, boot_val="4096",
        category=MEM),
    row("max_wal_size", "integer", "sighup", unit="MB", min_val="2", max_val=INT_MAX,
        boot_val="1024", category=CKPT),
    row("wal_decode_buffer_size", "integer", "postmaster", unit="B", min_val="65536",
        max_val="1073741823", boot_val="524288", category="Write-Ahead Log / Recovery"),
    row("track_activity_query_size", "integer", "postmaster", unit="B", min_val="100",
        max_val="1048576", boot_val="1024",
        category="Statistics / Cumulative Query and Index Statistics"),
    row("checkpoint_timeout", "integer", "sighup", unit="s", min_val="30", max_val="86400",
        boot_val="300", category=CKPT),
    row("deadlock_timeout", "integer", "superuser", unit="ms", min_val="1", max_val=INT_MAX,
        boot_val="1000", category="Lock Management"),
    row("log_rotation_age", "integer", "sighup", unit="min", min_val="0", max_val="35791394",
        boot_val="1440", category="Reporting and Logging / Where to Log"),
    row("wal_buffers", "integer", "postmaster", unit="8kB", min_val="-1", max_val="262143",
        boot_val="-1", category=WAL),
    row("log_min_duration_statement", "integer", "superuser", unit="ms", min_val="-1",
        max_val=INT_MAX, boot_val="-1", category=LOG_WHEN),
    row("max_connections", "integer", "postmaster", min_val="1", max_val="262143",
        boot_val="100", category="Connections and Authentication / Connection Settings"),
    row("port", "integer", "postmaster", min_val="1", max_val="65535", boot_val="5432",
        category="Connections and Authentication / Connection Settings"),
    row("max_pred_locks_per_relation", "integer", "sighup", min_val="-2147483648",
        max_val=INT_MAX, boot_val="-2", category="Lock Management"),
    row("statement_timeout", "integer", unit="ms", min_val="0", max_val=INT_MAX, boot_val="0",
        category="Client Connection Defaults / Statement Behavior"),
    row("post_auth_delay", "integer", "backend", unit="s", min_val="0", max_val="2147",
        boot_val="0", category=DEV),
    # real, with and without a unit, with the 1.79769e+308 sentinel
    row("random_page_cost", "real", min_val="0", max_val=BIG_REAL, boot_val="4"),
    row("cpu_operator_cost", "real", min_val="0", max_val=BIG_REAL, boot_val="0.0025"),
    row("jit_above_cost", "real", min_val="-1", max_val=BIG_REAL, boot_val="100000"),
    row("vacuum_cost_delay", "real", unit="ms", min_val="0", max_val="100", boot_val="0",
        category="Resource Usage / Cost-Based Vacuum Delay"),
    row("recursive_worktable_factor", "real", min_val="0.001", max_val="1e+06", boot_val="10",
        category="Query Tuning / Other Planner Options"),
    row("checkpoint_completion_target", "real", "sighup", min_val="0", max_val="1",
        boot_val="0.9", category=CKPT),
    # bool
    row("enable_seqscan", "bool", boot_val="on",
        category="Query Tuning / Planner Method Configuration"),
    row("fsync", "bool", "sighup", boot_val="on", category=WAL),
    row("full_page_writes", "bool", "sighup", boot_val="on", category=WAL),
    row("wal_log_hints", "bool", "postmaster", boot_val="off", category=WAL),
    row("zero_damaged_pages", "bool", "superuser", boot_val="off", category=DEV),
    row("ignore_system_indexes", "bool", "backend", boot_val="off", category=DEV),
    row("ignore_invalid_pages", "bool", "postmaster", boot_val="off", category=DEV),
    row("data_sync_retry", "bool", "postmaster", boot_val="off", category="Error Handling"),
    row("log_connections", "bool", "superuser-backend", boot_val="off",
        category="Reporting and Logging / What to Log"),
    row("track_io_timing", "bool", "superuser", boot_val="off",
        category="Statistics / Cumulative Query and Index Statistics"),
    row("update_process_title", "bool", "superuser", boot_val="on",
        category="Reporting and Logging / Process Title"),
    row("synchronize_seqscans", "bool", boot_val="on",
        category="Version and Platform Compatibility / Previous PostgreSQL Versions"),
    row("standard_conforming_strings", "bool", boot_val="on",
        category="Version and Platform Compatibility / Previous PostgreSQL Versions"),
    # enum
    row("synchronous_commit", "enum",
        enumvals=["local", "remote_write", "remote_apply", "on", "off"], boot_val="on",
        category=WAL),
    row("wal_sync_method", "enum", "sighup",
        enumvals=["fsync", "fdatasync", "open_sync", "open_datasync"], boot_val="fdatasync",
        category=WAL),
    row("default_transaction_isolation", "enum",
        enumvals=["serializable", "repeatable read", "read committed", "read uncommitted"],
        boot_val="read committed", category="Client Connection Defaults / Statement Behavior"),
    row("ssl_max_protocol_version", "enum", "sighup",
        enumvals=["", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"], boot_val="",
        category="Connections and Authentication / SSL"),
    row("huge_pages", "enum", "postmaster", enumvals=["off", "on", "try"], boot_val="try",
        category=MEM),
    # string: never knobs
    row("search_path", "string", boot_val='"$user", public',
        category="Client Connection Defaults / Statement Behavior"),
    row("DateStyle", "string", boot_val="ISO, MDY",
        category="Client Connection Defaults / Locale and Formatting"),
    row("listen_addresses", "string", "postmaster", boot_val="localhost",
        category="Connections and Authentication / Connection Settings"),
    # internal: read-only
    row("block_size", "integer", "internal", min_val="8192", max_val="8192", boot_val="8192",
        category="Preset Options"),
    row("data_checksums", "bool", "internal", boot_val="off", category="Preset Options"),
]  # fmt: skip


@pytest.fixture(scope="module")
def imported() -> _import.Imported:
    return import_settings(ROWS, server_version=VERSION, source="test rows", generated_at=WHEN)


@pytest.fixture(scope="module")
def spec(imported: _import.Imported) -> Spec:
    return parse_spec(imported.text, "imported.yaml", MACHINE)


def raw_knobs(text: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    knobs = data["knobs"]
    assert isinstance(knobs, dict)
    return knobs


# -- the mapping --------------------------------------------------------------------------------


def test_every_knob_vartype_is_imported_and_strings_and_internals_are_not(spec: Spec) -> None:
    by_type = {name: knob.type for name, knob in spec.knobs.items()}
    assert by_type["shared_buffers"] == "integer"
    assert by_type["random_page_cost"] == "real"
    assert by_type["enable_seqscan"] == "bool"
    assert by_type["synchronous_commit"] == "enum"
    for name in ("search_path", "DateStyle", "listen_addresses", "block_size", "data_checksums"):
        assert name not in spec.knobs
    imported_names = {r["name"] for r in ROWS} - {
        "search_path", "DateStyle", "listen_addresses", "block_size", "data_checksums",
    }  # fmt: skip
    assert set(spec.knobs) == imported_names


def test_skipped_settings_are_listed_in_comments(imported: _import.Imported) -> None:
    assert imported.skipped == {
        "search_path": "string: not a knob type",
        "DateStyle": "string: not a knob type",
        "listen_addresses": "string: not a knob type",
        "block_size": "internal: read-only",
        "data_checksums": "internal: read-only",
    }
    tail = imported.text.split("\n\n# Not imported", 1)[1]
    assert "3 string settings:\n#   DateStyle listen_addresses search_path" in tail
    assert "2 internal settings:\n#   block_size data_checksums" in tail


@pytest.mark.parametrize(
    ("name", "unit", "native_default", "written_default", "lo", "hi"),
    [
        ("shared_buffers", "8kB", 16384, "128MB", 16, 1073741823),
        ("work_mem", "kB", 4096, "4MB", 64, 2147483647),
        ("max_wal_size", "MB", 1024, "1GB", 2, 2147483647),
        ("wal_decode_buffer_size", "B", 524288, "512kB", 65536, 1073741823),
        ("track_activity_query_size", "B", 1024, "1kB", 100, 1048576),
        ("checkpoint_timeout", "s", 300, "5min", 30, 86400),
        ("deadlock_timeout", "ms", 1000, "1s", 1, 2147483647),
        ("log_rotation_age", "min", 1440, "1d", 0, 35791394),
        ("wal_buffers", "8kB", -1, "-1", -1, 262143),
        ("max_connections", None, 100, "100", 1, 262143),
        ("max_pred_locks_per_relation", None, -2, "-2", -2147483648, 2147483647),
    ],
)
def test_integer_units_bounds_and_boot_val_in_the_native_unit(
    imported: _import.Imported,
    spec: Spec,
    name: str,
    unit: str | None,
    native_default: int,
    written_default: str,
    lo: int,
    hi: int,
) -> None:
    knob = spec.knobs[name]
    assert knob.unit.text == unit  # exactly pg_settings.unit
    assert knob.default == native_default  # boot_val, read back in the native unit
    assert (knob.lo, knob.hi) == (lo, hi)  # min_val, max_val: PostgreSQL's own limits
    assert str(raw_knobs(imported.text)[name]["default"]) == written_default
    assert knob.format(knob.default) in (written_default, str(native_default))


def test_huge_real_sentinels_are_kept_as_numbers(imported: _import.Imported, spec: Spec) -> None:
    rpc = spec.knobs["random_page_cost"]
    assert (rpc.lo, rpc.hi, rpc.default) == (0.0, 1.79769e308, 4.0)
    assert isinstance(raw_knobs(imported.text)["random_page_cost"]["max"], float)
    assert spec.knobs["cpu_operator_cost"].default == 0.0025
    assert spec.knobs["recursive_worktable_factor"].hi == 1e6
    assert spec.knobs["recursive_worktable_factor"].lo == 0.001
    vcd = spec.knobs["vacuum_cost_delay"]
    assert (vcd.type, vcd.unit.text, vcd.hi) == ("real", "ms", 100.0)
    assert spec.knobs["checkpoint_completion_target"].default == 0.9


def test_minus_one_is_special(spec: Spec) -> None:
    assert spec.knobs["wal_buffers"].special == (-1,)
    assert spec.knobs["wal_buffers"].format(-1) == "-1"  # not "-8kB"
    assert spec.knobs["jit_above_cost"].special == (-1.0,)
    assert spec.knobs["log_min_duration_statement"].special == (-1,)
    assert spec.knobs["shared_buffers"].special == ()


def test_enums_keep_pg_values_in_order_and_the_boot_default(spec: Spec) -> None:
    sc = spec.knobs["synchronous_commit"]
    assert sc.values == ("local", "remote_write", "remote_apply", "on", "off")
    assert sc.default == "on"
    dti = spec.knobs["default_transaction_isolation"]
    assert dti.default == "read committed"
    assert spec.knobs["ssl_max_protocol_version"].values[0] == ""
    assert spec.knobs["huge_pages"].default == "try"


def test_bools(spec: Spec) -> None:
    assert spec.knobs["enable_seqscan"].default is True
    assert spec.knobs["wal_log_hints"].default is False


@pytest.mark.parametrize(
    ("context", "apply"),
    [
        ("postmaster", "restart"),
        ("sighup", "reload"),
        ("superuser", "reload"),
        ("user", "reload"),
        ("backend", "reload"),
        ("superuser-backend", "reload"),
    ],
)
def test_context_maps_to_apply(context: str, apply: str) -> None:
    assert APPLY_BY_CONTEXT[context] == apply
    rows = [row("x", "bool", context, boot_val="on")]
    spec = parse_spec(spec_from_settings(rows, server_version=VERSION), "x.yaml", MACHINE)
    assert spec.knobs["x"].apply == apply


def test_every_postmaster_setting_needs_a_restart(spec: Spec) -> None:
    for r in ROWS:
        if r["name"] in spec.knobs:
            expected = "restart" if r["context"] == "postmaster" else "reload"
            assert spec.knobs[r["name"]].apply == expected, r["name"]


def test_unknown_context_and_unreadable_rows_are_skipped_with_a_reason() -> None:
    rows = [
        row("future", "bool", "someday", boot_val="on"),
        row("odd_enum", "enum", enumvals=["a", "b"], boot_val="c"),
        row("out_of_range", "integer", min_val="0", max_val="10", boot_val="11"),
        row("odd_unit", "integer", unit="XB", min_val="0", max_val="10", boot_val="1"),
        row("no_bounds", "integer", boot_val="1"),
        row("ok", "bool", boot_val="off"),
    ]
    imported = import_settings(rows, server_version=VERSION)
    assert [k.name for k in imported.knobs] == ["ok"]
    skipped = imported.skipped
    assert skipped["future"] == "unknown context: 'someday'"
    assert skipped["odd_enum"].startswith("invalid:") and "'c'" in skipped["odd_enum"]
    assert skipped["out_of_range"].startswith("invalid:") and "outside" in skipped["out_of_range"]
    assert skipped["odd_unit"].startswith("unreadable:") and "XB" in skipped["odd_unit"]
    assert skipped["no_bounds"] == "unreadable: missing"
    for name, why in skipped.items():
        assert f"#   {name}: {why}" in imported.text
    parse_spec(imported.text, "x.yaml", MACHINE)


# -- safety and tunability ------------------------------------------------------------------------


def test_unsafe_list() -> None:
    for name in (
        "fsync", "synchronous_commit", "full_page_writes", "zero_damaged_pages",
        "ignore_checksum_failure", "ignore_system_indexes", "ignore_invalid_pages",
        "data_sync_retry", "allow_system_table_mods",
    ):  # fmt: skip
        assert name in UNSAFE, name
    # Every wal_sync_method PostgreSQL offers flushes durably: a speed choice, not a risk.
    assert "wal_sync_method" not in UNSAFE


def test_safety_and_tunable_marks(spec: Spec) -> None:
    unsafe = {name for name, knob in spec.knobs.items() if knob.safety == "unsafe"}
    assert unsafe == {
        "fsync", "full_page_writes", "synchronous_commit", "zero_damaged_pages",
        "ignore_system_indexes", "ignore_invalid_pages", "data_sync_retry",
    }  # fmt: skip
    assert spec.knobs["wal_sync_method"].safety == "safe"
    # The durability knobs stay tunable (with --allow-unsafe); the repair tools do not.
    assert spec.knobs["fsync"].tunable and spec.knobs["synchronous_commit"].tunable
    fixed = {name for name, knob in spec.knobs.items() if not knob.tunable}
    assert fixed == {
        "zero_damaged_pages", "ignore_system_indexes", "ignore_invalid_pages", "post_auth_delay",
        "data_sync_retry",  # crash behaviour
        "log_rotation_age", "log_min_duration_statement", "log_connections",  # logging
        "track_io_timing", "track_activity_query_size",  # the tuner's own statistics
        "max_connections", "port", "ssl_max_protocol_version",  # connections
        "statement_timeout",  # a safety valve
        "default_transaction_isolation",  # semantics
        "standard_conforming_strings",  # compatibility: changes results
        "wal_decode_buffer_size",  # recovery only
    }  # fmt: skip
    # In a non-tunable category, but speed and nothing else.
    assert spec.knobs["synchronize_seqscans"].tunable
    assert spec.knobs["update_process_title"].tunable


def test_not_tunable_knobs_say_why(imported: _import.Imported) -> None:
    lines = imported.text.splitlines()
    marks = [line for line in lines if line.startswith("    tunable:")]
    assert len(marks) == imported.fixed
    assert all(line.startswith("    tunable: false  # ") for line in marks)
    assert "    tunable: false  # logging" in lines
    assert NOT_TUNABLE["statement_timeout"].startswith("safety valve")
    assert "    safety: unsafe  # off: a crash can corrupt the whole cluster" in lines


def test_groups_follow_categories_and_hold_tunable_knobs_only(spec: Spec) -> None:
    assert spec.groups["resource_usage.memory"] == ("huge_pages", "shared_buffers", "work_mem")
    assert "write_ahead_log.checkpoints" in spec.groups
    assert set(spec.groups["write_ahead_log"]) >= {"max_wal_size", "fsync", "wal_buffers"}
    for members in spec.groups.values():
        assert all(spec.knobs[m].tunable for m in members)
    assert "lock_management" in spec.groups
    assert set(spec.groups["resource_usage"]) == {
        "huge_pages", "shared_buffers", "work_mem", "vacuum_cost_delay",
    }  # fmt: skip
    # A category with one subcategory of tunable knobs keeps only the precise name.
    assert spec.groups["reporting_and_logging.process_title"] == ("update_process_title",)
    assert "reporting_and_logging" not in spec.groups


# -- the file --------------------------------------------------------------------------------------


def test_header_and_top_level_fields(imported: _import.Imported, spec: Spec) -> None:
    head = imported.text.split("\nsystem:", 1)[0]
    assert head.startswith(f"# PostgreSQL {VERSION} server parameters, imported from pg_settings.")
    assert "`autotune knobs import postgres` on 2024-05-06 07:08 UTC" in head
    assert "# from test rows." in head
    assert all(line.startswith("#") for line in head.splitlines())
    assert spec.system == "postgres"
    assert spec.applier == "postgres"
    assert VERSION in spec.description


def test_output_is_deterministic(imported: _import.Imported) -> None:
    again = import_settings(
        list(reversed(ROWS)), server_version=VERSION, source="test rows", generated_at=WHEN
    )
    assert again.text == imported.text


def test_descriptions_survive_yaml_specials() -> None:
    rows = [
        row("a", "bool", boot_val="on", short_desc="Sets a: the 'b' # not a comment"),
        row("b", "bool", boot_val="on", short_desc="yes"),
        row("c", "bool", boot_val="on", short_desc="Line one.\nLine two."),
    ]
    spec = parse_spec(spec_from_settings(rows, server_version=VERSION), "x.yaml", MACHINE)
    assert spec.knobs["a"].description == "Sets a: the 'b' # not a comment"
    assert spec.knobs["b"].description == "yes"
    assert spec.knobs["c"].description == "Line one. Line two."


def test_summary_counts(imported: _import.Imported) -> None:
    assert len(imported.knobs) == len(ROWS) - 5
    assert imported.unsafe == 7
    assert imported.tunable + imported.fixed == len(imported.knobs)
    assert imported.summary().startswith(f"{len(imported.knobs)} knobs: {imported.tunable} tunable")


def test_output_validates_with_the_cli(imported: _import.Imported, tmp_path: Path) -> None:
    path = tmp_path / "my-postgres.yaml"
    path.write_text(imported.text)
    result = runner.invoke(app, ["knobs", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"ok ({len(imported.knobs)} knobs" in result.stdout
    loaded = load_spec(path)
    for name, knob in loaded.knobs.items():
        assert knob.validate(knob.default) == knob.default, name
        assert knob.validate(knob.format(knob.default)) == knob.default, name


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Replace the server with ROWS; records the DSN each call was given."""
    calls: list[str | None] = []

    def fetch(dsn: str | None = None, sandbox_root: Path | None = None) -> Any:
        calls.append(dsn)
        return ROWS, VERSION, "fake rows"

    monkeypatch.setattr("autotune.systems.postgres.fetch_settings", fetch)  # as the CLI finds it
    return calls


def test_cli_import_prints_a_valid_spec(fake_server: list[str | None], tmp_path: Path) -> None:
    result = runner.invoke(app, ["knobs", "import", "postgres"])
    assert result.exit_code == 0, result.output
    assert fake_server == [None]  # the managed sandbox
    path = tmp_path / "out.yaml"
    path.write_text(result.stdout)
    assert load_spec(path).knobs["shared_buffers"].apply == "restart"
    assert "tunable" in result.stderr and "skipped 5" in result.stderr


def test_cli_import_dsn_and_output_file(fake_server: list[str | None], tmp_path: Path) -> None:
    path = tmp_path / "out.yaml"
    result = runner.invoke(
        app, ["knobs", "import", "postgres", "--dsn", "host=/x dbname=y", "-o", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert fake_server == ["host=/x dbname=y"]
    assert result.stdout == ""
    assert len(load_spec(path).knobs) == len(ROWS) - 5


def test_cli_import_of_an_unsupported_system_lists_the_supported_ones() -> None:
    result = runner.invoke(app, ["knobs", "import", "mysql"])
    assert result.exit_code == 2
    assert "cannot import 'mysql': supported systems: postgres" in result.stderr
    assert result.stdout == ""


def test_cli_import_from_an_unreachable_server_is_one_clear_error() -> None:
    result = runner.invoke(
        app, ["knobs", "import", "postgres", "--dsn", "postgresql://nobody@127.0.0.1:1/x"]
    )
    assert result.exit_code == 2
    assert "cannot connect to PostgreSQL" in result.stderr
    assert "Traceback" not in result.output


class FakeSandbox:
    instances: list[FakeSandbox] = []  # noqa: RUF012 - a test's record

    def __init__(self, root: Path | None = None) -> None:
        self.events: list[str] = []
        FakeSandbox.instances.append(self)

    def create(self) -> None:
        self.events.append("create")

    def start(self) -> None:
        self.events.append("start")

    def conn_params(self) -> dict[str, str]:
        return {"host": "/nonexistent"}

    def destroy(self) -> None:
        self.events.append("destroy")


@pytest.fixture
def fake_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeSandbox]]:
    FakeSandbox.instances = []
    monkeypatch.setattr(_import, "Sandbox", FakeSandbox)
    yield FakeSandbox


@pytest.mark.parametrize("error", [SystemError_("cannot connect"), KeyboardInterrupt()])
def test_the_managed_sandbox_is_destroyed_on_error_and_ctrl_c(
    fake_sandbox: type[FakeSandbox], monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def boom(params: Any) -> Any:
        raise error

    monkeypatch.setattr(_import, "_read", boom)
    with pytest.raises(type(error)):
        _import.fetch_settings()
    (box,) = fake_sandbox.instances
    assert box.events == ["create", "start", "destroy"]


def test_the_managed_sandbox_is_destroyed_after_reading(
    fake_sandbox: type[FakeSandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_import, "_read", lambda params: (ROWS, VERSION))
    rows, version, source = _import.fetch_settings()
    assert (rows, version) == (ROWS, VERSION)
    assert "managed sandbox" in source
    (box,) = fake_sandbox.instances
    assert box.events == ["create", "start", "destroy"]
