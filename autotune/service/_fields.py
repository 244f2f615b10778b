"""The bounded field types every request body is made of: names, texts, times, configs,
and the strict base model that refuses unknown fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
)

from autotune.optimizers import OPTIMIZERS
from autotune.store import NAME_PATTERN

# Tokens are opaque printable ASCII; agent tokens are secrets.token_urlsafe(32).
TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,512}$")

KiB = 1024
MiB = 1024 * KiB

KNOB_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$"  # the spec's NAME_RE, bounded
LEASE_ID_PATTERN = r"^[0-9a-f]{32}$"  # Store.lease_next: secrets.token_hex(16)
MAX_DB_INT = 2**31 - 1  # the store's Integer columns: larger ids or seeds would not fit

Name = Annotated[str, Field(pattern=NAME_PATTERN, strict=True, examples=["pg-tpcb-1"])]
KnobName = Annotated[str, Field(pattern=KNOB_PATTERN, strict=True)]
MetricName = Annotated[str, Field(pattern=KNOB_PATTERN, strict=True)]
KnobGroup = Annotated[str, Field(pattern=r"^group:[A-Za-z0-9_.-]{1,128}$", strict=True)]
LeaseId = Annotated[str, Field(pattern=LEASE_ID_PATTERN, strict=True)]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
ConfigValue = Annotated[
    bool | int | Finite | Annotated[str, Field(max_length=4096)], Field(union_mode="left_to_right")
]
if TYPE_CHECKING:
    OptimizerName = str
else:  # every registered optimiser, as an enum in the API schema
    OptimizerName = Literal[tuple(sorted(OPTIMIZERS))]


def _relative(path: str) -> str:
    """Workload files land under the agent's work dir: the path must stay inside it."""
    if path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
        raise ValueError("must be a relative path inside the workload's folder, without '..'")
    return path


def _storable(text: str) -> str:
    """Refuse text PostgreSQL cannot hold (pydantic already refuses lone surrogates)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _scrub(text: str) -> str:
    """Make reported free text (errors, server logs) storable rather than lose the report."""
    return text.replace("\x00", "\ufffd")


def _utc(value: datetime) -> datetime:
    """Store times in UTC; refuse ones that do not fit there rather than fail later."""
    try:
        out = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not 1970 <= out.year <= 9000:
        raise ValueError("must be between 1970 and 9000")
    return out


HistoryItem = Annotated[str, Field(max_length=200, strict=True), AfterValidator(_scrub)]
RelPath = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_./-]+$", strict=True),
    AfterValidator(_relative),
]
Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
Document = Annotated[
    str, Field(min_length=1, max_length=1 * MiB, strict=True), AfterValidator(_storable)
]
FileText = Annotated[str, Field(max_length=4 * MiB, strict=True), AfterValidator(_storable)]
Label = Annotated[
    str,
    Field(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f\x7f]+$", strict=True),
    AfterValidator(_storable),
]
ShortText = Annotated[str, Field(max_length=10_000, strict=True), AfterValidator(_scrub)]
LongText = Annotated[str, Field(max_length=64 * KiB, strict=True), AfterValidator(_scrub)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
