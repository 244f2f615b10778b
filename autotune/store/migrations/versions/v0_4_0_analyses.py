"""v0.4.0: analyses of an experiment (knob rankings, verifications), kept with it.

Revision ID: v0.4.0
Revises: v0.3.0
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "v0.4.0"
down_revision = "v0.3.0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "experiment_id",
            sa.Integer,
            sa.ForeignKey("experiments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_analyses_experiment_kind", "analyses", ["experiment_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_analyses_experiment_kind", "analyses")
    op.drop_table("analyses")
