"""What the pg_settings import decides by name and category: the apply class of each
context, the settings that trade durability (unsafe), and those it leaves out."""

from __future__ import annotations

APPLY_BY_CONTEXT: dict[str, str] = {
    "postmaster": "restart",
    "sighup": "reload",
    "superuser": "reload",
    "user": "reload",
    "backend": "reload",
    "superuser-backend": "reload",
}
KNOB_VARTYPES = ("bool", "integer", "real", "enum")
COLUMNS = (
    "name",
    "vartype",
    "unit",
    "category",
    "short_desc",
    "context",
    "min_val",
    "max_val",
    "enumvals",
    "boot_val",
)

# Settings that may lose committed data or corrupt it (on a crash, or at once):
# ``safety: unsafe``, so the tuner leaves them alone without --allow-unsafe.
# wal_sync_method is *not* here: every method PostgreSQL offers on a platform
# (on Linux fsync, fdatasync, open_sync, open_datasync; fsync_writethrough only
# where it exists) flushes WAL durably before a commit returns, which is why
# the docs leave the choice to pg_test_fsync timings. A drive that acknowledges
# writes it has only cached loses data under every method alike.
UNSAFE: dict[str, str] = {
    "fsync": "off: a crash can corrupt the whole cluster",
    "synchronous_commit": "off: a crash loses the latest commits; local/remote_write: failover can",
    "full_page_writes": "off: a page torn by a crash cannot be repaired from WAL",
    "zero_damaged_pages": "destroys the rows in every damaged page it reads",
    "ignore_checksum_failure": "reads and spreads pages whose checksum fails",
    "ignore_system_indexes": "catalog repair tool: the catalog indexes are not used",
    "ignore_invalid_pages": "recovery carries on past references to invalid pages",
    "data_sync_retry": "on: a retried fsync can report success for data the kernel dropped",
    "allow_system_table_mods": "lets DDL change system catalogs, which can corrupt them",
    "session_replication_role": "replica: triggers and foreign keys are not enforced",
}

# Settings recorded in the spec but never changed (``tunable: false``): they do
# not make a workload faster, or changing them changes what the server does
# rather than how fast: its results, security, files, replication topology or
# the statistics the tuner itself reads. A name here wins over a prefix, a
# prefix over a category; TUNABLE_ANYWAY overrides the prefixes and categories.
NOT_TUNABLE: dict[str, str] = {
    # Client defaults that change results or how values are printed.
    "DateStyle": "client formatting default",
    "IntervalStyle": "client formatting default",
    "TimeZone": "client formatting default",
    "extra_float_digits": "client formatting default: changes how floats are printed",
    "bytea_output": "client formatting default",
    "xmlbinary": "client formatting default",
    "xmloption": "client default: changes how XML is parsed",
    "client_min_messages": "client default: which messages reach the client",
    "client_encoding": "client default",
    "search_path": "client default: changes which objects a name means",
    "default_transaction_isolation": "transaction semantics, not speed",
    "default_transaction_read_only": "transaction semantics, not speed",
    "default_transaction_deferrable": "transaction semantics, not speed",
    "transaction_isolation": "transaction semantics, not speed",
    "transaction_read_only": "transaction semantics, not speed",
    "transaction_deferrable": "transaction semantics, not speed",
    "session_replication_role": "replication semantics: disables triggers and foreign keys",
    "row_security": "security: row-level security policies",
    "check_function_bodies": "DDL validation, not speed",
    "gin_fuzzy_search_limit": "changes query results (a random subset)",
    "default_tablespace": "file locations",
    "temp_tablespaces": "file locations",
    # Safety valves: they cancel or refuse work instead of speeding it up.
    "statement_timeout": "safety valve: cancels statements",
    "lock_timeout": "safety valve: cancels statements",
    "idle_in_transaction_session_timeout": "safety valve: ends sessions",
    "idle_session_timeout": "safety valve: ends sessions",
    "temp_file_limit": "safety valve: cancels statements",
    "max_stack_depth": "safety valve: too high crashes backends on deep recursion",
    "old_snapshot_threshold": "safety valve: old snapshots fail with 'snapshot too old'",
    "checkpoint_warning": "logging only",
    # Capacities the application or the host decides.
    "max_prepared_transactions": "application requirement: 0 disables two-phase commit",
    "huge_page_size": "must be a huge page size the kernel offers, or the server does not start",
    "wal_level": "replication and PITR capability; minimal needs max_wal_senders = 0",
    # Crash behaviour.
    "exit_on_error": "crash behaviour",
    "restart_after_crash": "crash behaviour",
    "data_sync_retry": "crash behaviour",
    "recovery_init_sync_method": "crash recovery only",
    # Identity and process titles.
    "application_name": "identity",
    "cluster_name": "identity",
}
NOT_TUNABLE_PREFIXES: dict[str, str] = {
    "log_": "logging",
    "syslog_": "logging",
    "debug_": "debugging output",
    "trace_": "debugging output",
    "track_": "statistics collection: the tuner's own metrics read these statistics",
    "ssl": "TLS configuration",
    "krb_": "authentication",
    "lc_": "locale",
    "unix_socket_": "connection endpoint",
    "tcp_": "network keepalives",
    "archive_": "WAL archiving: a backup policy",
    "recovery_": "recovery only",
    "wal_receiver_": "standby only",
    "max_standby_": "standby only",
    "hot_standby": "standby only",
}
NOT_TUNABLE_CATEGORIES: dict[str, str] = {
    "Developer Options": "developer option: the docs say never on a production database",
    "File Locations": "file locations",
    "Connections and Authentication": (
        "connection endpoint, limits and authentication the application decides"
    ),
    "Reporting and Logging / What to Log": "logging",
    "Reporting and Logging / Where to Log": "logging",
    "Reporting and Logging / When to Log": "logging",
    "Statistics": "statistics collection: the tuner's own metrics read these statistics",
    "Replication": "replication topology, decided by the deployment",
    "Write-Ahead Log / Archiving": "WAL archiving: a backup policy",
    "Write-Ahead Log / Archive Recovery": "recovery only",
    "Write-Ahead Log / Recovery": "recovery only",
    "Write-Ahead Log / Recovery Target": "recovery only",
    "Client Connection Defaults / Locale and Formatting": "client formatting default",
    "Client Connection Defaults / Shared Library Preloading": "extensions the application needs",
    "Version and Platform Compatibility": "compatibility behaviour: changes results",
    "Error Handling": "crash behaviour",
}
# In a category above, but they do change speed and nothing else.
TUNABLE_ANYWAY: frozenset[str] = frozenset({"synchronize_seqscans"})
