"""totp second factor: a secret per agent who turned it on, and the last time step accepted

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('agents', sa.Column('totp_secret', sa.String(length=64), nullable=True))
    op.add_column('agents', sa.Column('totp_last_step', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_secret')
