"""provider back-offs remember how many failures in a row and of which kind, so a restart keeps
the growing delay instead of starting again at the first step

Revision ID: 0006
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backoffs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("kind", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("backoffs") as batch:
        batch.drop_column("kind")
        batch.drop_column("attempts")
