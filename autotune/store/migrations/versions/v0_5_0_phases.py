"""v0.5.0: a trial's phase (search, control or verify), and a verification's round and arm.

Revision ID: v0.5.0
Revises: v0.4.0
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "v0.5.0"
down_revision = "v0.4.0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trials recorded before this revision were all the search's.
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("phase", sa.String(16), nullable=False, server_default="search"))
        batch.add_column(sa.Column("round", sa.Integer, nullable=True))
        batch.add_column(sa.Column("arm", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("arm")
        batch.drop_column("round")
        batch.drop_column("phase")
