"""twilio: call legs with their last status; what a queue's callers on hold hear

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('queues', sa.Column('hold_message', sa.String(length=500), nullable=True))
    op.add_column('queues', sa.Column('hold_music_url', sa.String(length=500), nullable=True))
    op.create_table(
        'twilio_calls',
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('parent_sid', sa.String(length=64), nullable=True),
        sa.Column('conversation_id', sa.Integer(), nullable=True),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('holding', sa.Boolean(), nullable=False),
        sa.Column('dialing_agent_id', sa.Integer(), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('updated_at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_twilio_calls_agent_id_agents'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_twilio_calls_conversation_id_conversations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('call_sid', name=op.f('pk_twilio_calls')),
    )
    op.create_index(op.f('ix_twilio_calls_conversation_id'), 'twilio_calls', ['conversation_id'], unique=False)
    op.create_index(op.f('ix_twilio_calls_parent_sid'), 'twilio_calls', ['parent_sid'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_twilio_calls_parent_sid'), table_name='twilio_calls')
    op.drop_index(op.f('ix_twilio_calls_conversation_id'), table_name='twilio_calls')
    op.drop_table('twilio_calls')
    op.drop_column('queues', 'hold_music_url')
    op.drop_column('queues', 'hold_message')
