"""chat: files sent in a chat (images and PDF), kept with their message

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A table of its own: the messages table is read for every push and stays small; the bytes
    # are read only when someone opens the file.
    op.create_table(
        'attachments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('chat_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_attachments_message_id_messages'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_attachments_chat_id_chats'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
        sa.UniqueConstraint('message_id', name=op.f('uq_attachments_message_id')),
    )
    op.create_index(op.f('ix_attachments_chat_id'), 'attachments', ['chat_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_attachments_chat_id'), table_name='attachments')
    op.drop_table('attachments')
