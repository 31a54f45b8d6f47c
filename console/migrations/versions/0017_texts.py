"""texts: SMS and WhatsApp messages with their delivery (and statuses that came early), and the numbers that opted out

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The conversations' channel is stored as text without a check: "sms" needs no change there.
    op.create_table(
        'text_messages',
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('direction', sa.Enum('in', 'out', name='direction', native_enum=False, length=20), nullable=False),
        sa.Column('sid', sa.String(length=64), nullable=True),
        sa.Column('client_id', sa.String(length=64), nullable=True),
        sa.Column('template', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('error', sa.String(length=300), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', console.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_text_messages_conversation_id_conversations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_text_messages_message_id_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('message_id', name=op.f('pk_text_messages')),
        sa.UniqueConstraint('client_id', name=op.f('uq_text_messages_client_id')),
        sa.UniqueConstraint('sid', name=op.f('uq_text_messages_sid')),
    )
    op.create_index(op.f('ix_text_messages_conversation_id'), 'text_messages', ['conversation_id'], unique=False)
    op.create_index(op.f('ix_text_messages_next_attempt_at'), 'text_messages', ['next_attempt_at'], unique=False)
    op.create_table(
        'text_early_statuses',
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('error', sa.String(length=300), nullable=True),
        sa.Column('at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sid', name=op.f('pk_text_early_statuses')),
    )
    op.create_index(op.f('ix_text_early_statuses_at'), 'text_early_statuses', ['at'], unique=False)
    op.create_table(
        'text_opt_outs',
        sa.Column('address', sa.String(length=80), nullable=False),
        sa.Column('keyword', sa.String(length=40), nullable=False),
        sa.Column('at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('address', name=op.f('pk_text_opt_outs')),
    )


def downgrade() -> None:
    op.drop_table('text_opt_outs')
    op.drop_index(op.f('ix_text_early_statuses_at'), table_name='text_early_statuses')
    op.drop_table('text_early_statuses')
    op.drop_index(op.f('ix_text_messages_next_attempt_at'), table_name='text_messages')
    op.drop_index(op.f('ix_text_messages_conversation_id'), table_name='text_messages')
    op.drop_table('text_messages')
