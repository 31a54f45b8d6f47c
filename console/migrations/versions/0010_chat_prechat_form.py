"""chat: a site may ask its visitors' name and email before the first message

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A column with a default is added in place on both databases: existing sites do not ask.
    op.add_column('chat_sites', sa.Column('prechat', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('chat_sites') as batch_op:
        batch_op.drop_column('prechat')
