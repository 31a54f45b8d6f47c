"""conversations: the customer's satisfaction rating (1 to 5) and comment, per part

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns are added in place on both databases: no table copy, no rewrite of rows.
    op.add_column('conversations', sa.Column('rating', sa.SmallInteger(), nullable=True))
    op.add_column('conversations', sa.Column('rating_comment', sa.Text(), nullable=True))
    op.add_column('conversations', sa.Column('rated_at', console.models.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('conversations') as batch_op:
        batch_op.drop_column('rated_at')
        batch_op.drop_column('rating_comment')
        batch_op.drop_column('rating')
