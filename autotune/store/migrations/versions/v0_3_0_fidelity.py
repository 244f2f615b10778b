"""v0.3.0: trial fidelity and repeats; the optimiser's state with its experiment.

Revision ID: v0.3.0
Revises: v0.2.0
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "v0.3.0"
down_revision = "v0.2.0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trials recorded before this revision all ran the full duration, once each.
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("fidelity", sa.Float, nullable=False, server_default="1.0"))
        batch.add_column(
            sa.Column("repeat", sa.Boolean, nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("optimizer_state", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("optimizer_state")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("repeat")
        batch.drop_column("fidelity")
