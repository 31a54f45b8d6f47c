"""status after contact: what an agent on a contact chose for when it ends (away, offline)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('agents', sa.Column('after_status', sa.String(length=20), nullable=True))
    op.add_column('agents', sa.Column('after_reason', sa.String(length=100), nullable=True))
    op.add_column('agents', sa.Column('after_version', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch_op:
        batch_op.drop_column('after_version')
        batch_op.drop_column('after_reason')
        batch_op.drop_column('after_status')
