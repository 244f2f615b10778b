"""v0.2.0: trials proposed ahead and leased by agents; agent tokens; workload files.

Revision ID: v0.2.0
Revises: v0.1.0
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "v0.2.0"
down_revision = "v0.1.0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("workloads") as batch:
        batch.add_column(sa.Column("files", sa.JSON, nullable=False, server_default="{}"))
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="running")
        )
    with op.batch_alter_table("trials") as batch:
        batch.alter_column("started_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.alter_column("finished_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        batch.add_column(sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("agent", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.create_index("ix_trials_lease_id", ["lease_id"])
    # Experiments recorded by v0.1.0 ran to the end or were interrupted; both can resume.


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_index("ix_trials_lease_id")
        for column in ("attempts", "lease_expires_at", "lease_id", "agent", "proposed_at"):
            batch.drop_column(column)
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("status")
    with op.batch_alter_table("workloads") as batch:
        batch.drop_column("files")
    op.drop_table("agents")
