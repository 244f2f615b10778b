"""v0.6.0: the host an agent runs on, and the host a trial was leased to.

The scheduler uses them to keep two trials off one host at once (they would
measure each other's load), unless an experiment allows it.

Revision ID: v0.6.0
Revises: v0.5.0
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "v0.6.0"
down_revision = "v0.5.0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trials and agents recorded before this revision have no known host.
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("host", sa.String(64), nullable=True))
        batch.create_index("ix_trials_host", ["host"])
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("host", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("host")
    with op.batch_alter_table("trials") as batch:
        batch.drop_index("ix_trials_host")
        batch.drop_column("host")
