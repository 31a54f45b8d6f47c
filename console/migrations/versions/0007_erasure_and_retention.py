"""erasure and retention: when a customer was erased, when a conversation was anonymised

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 11:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('customers', sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('conversations', sa.Column('redacted_at', sa.DateTime(timezone=True), nullable=True))
    # The retention sweep looks for conversations that are over and not yet anonymised.
    op.create_index('ix_conversations_unredacted', 'conversations', ['created_at'],
                    postgresql_where=sa.text('redacted_at IS NULL'), sqlite_where=sa.text('redacted_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_conversations_unredacted', table_name='conversations')
    with op.batch_alter_table('conversations') as batch_op:
        batch_op.drop_column('redacted_at')
    with op.batch_alter_table('customers') as batch_op:
        batch_op.drop_column('erased_at')
