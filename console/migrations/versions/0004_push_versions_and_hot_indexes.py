"""push path: customer revisions for versioned fragments, partial indexes for the hot queries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Partial indexes on plain columns, so SQLite has them too: each hot query or sweep reads only
# the rows that are live now, whatever the history holds.
PARTIAL = [
    ('ix_status_periods_open', 'status_periods', ['agent_id'], "ended_at IS NULL"),
    ('ix_offers_pending_deadline', 'offers', ['deadline'], "state = 'pending'"),
    ('ix_offers_pending_conversation', 'offers', ['conversation_id', 'agent_id'], "state = 'pending'"),
    ('ix_conversations_open_by_agent', 'conversations', ['agent_id', 'channel'],
     "state IN ('offered', 'active', 'wrap_up')"),
    ('ix_conversations_queued', 'conversations', ['created_at', 'id'], "state = 'queued'"),
    ('ix_conversations_wrap_up_due', 'conversations', ['wrap_up_deadline'], "state = 'wrap_up'"),
    ('ix_handoffs_pending', 'handoffs', ['conversation_id'], "state = 'pending'"),
    ('ix_live_sockets_open', 'live_sockets', ['agent_id', 'seen_at'], "closed_at IS NULL"),
    ('ix_live_sockets_closed', 'live_sockets', ['closed_at'], "closed_at IS NOT NULL"),
]


def upgrade() -> None:
    op.add_column('customers', sa.Column('revision', sa.Integer(), server_default=sa.text('1'), nullable=False))
    for name, table, columns, where in PARTIAL:
        op.create_index(name, table, columns, unique=False, sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, table, _, _ in reversed(PARTIAL):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('revision')
