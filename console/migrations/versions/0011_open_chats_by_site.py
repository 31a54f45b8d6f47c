"""chat: the open chats of a site, read by the idle sweep every few seconds

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A partial index: only open chats are in it, so it stays small however many chats ended.
    op.create_index('ix_chats_open_by_site', 'chats', ['site_id', 'id'], unique=False,
                    sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_chats_open_by_site', table_name='chats',
                  sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))
