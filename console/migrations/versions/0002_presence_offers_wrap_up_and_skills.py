"""presence offers wrap-up and skills

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:36:57.204653
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('skills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_skills')),
    sa.UniqueConstraint('name', name=op.f('uq_skills_name'))
    )
    op.create_table('agent_skills',
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('skill_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_skills_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['skill_id'], ['skills.id'], name=op.f('fk_agent_skills_skill_id_skills'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', 'skill_id', name=op.f('pk_agent_skills'))
    )
    op.create_table('dispositions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_dispositions_queue_id_queues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispositions')),
    sa.UniqueConstraint('queue_id', 'code', name='uq_dispositions_queue_code')
    )
    op.create_table('live_sockets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('connected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_live_sockets_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_sockets'))
    )
    with op.batch_alter_table('live_sockets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_sockets_agent_id'), ['agent_id'], unique=False)

    op.create_table('queue_skills',
    sa.Column('queue_id', sa.Integer(), nullable=False),
    sa.Column('skill_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_queue_skills_queue_id_queues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['skill_id'], ['skills.id'], name=op.f('fk_queue_skills_skill_id_skills'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('queue_id', 'skill_id', name=op.f('pk_queue_skills'))
    )
    op.create_table('status_periods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('offline', 'available', 'busy', 'wrap_up', 'away', name='agent_status', native_enum=False, length=20), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_status_periods_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_periods'))
    )
    with op.batch_alter_table('status_periods', schema=None) as batch_op:
        batch_op.create_index('ix_status_periods_agent_started', ['agent_id', 'started_at'], unique=False)

    op.create_table('conversation_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('from_state', sa.Enum('queued', 'offered', 'active', 'wrap_up', 'closed', 'abandoned', 'transferred', name='conversation_state', native_enum=False, length=20), nullable=True),
    sa.Column('to_state', sa.Enum('queued', 'offered', 'active', 'wrap_up', 'closed', 'abandoned', 'transferred', name='conversation_state', native_enum=False, length=20), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_conversation_events_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_events_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_events'))
    )
    with op.batch_alter_table('conversation_events', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_events_conversation_at', ['conversation_id', 'at'], unique=False)

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('away_reason', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('capacity_call', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('capacity_chat', sa.Integer(), nullable=False, server_default='3'))
        batch_op.add_column(sa.Column('capacity_mail', sa.Integer(), nullable=False, server_default='5'))
        batch_op.add_column(sa.Column('missed_offers', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disposition_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('wrap_up_deadline', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offer_seconds', sa.Integer(), nullable=False, server_default='20'))
        batch_op.add_column(sa.Column('wrap_up_seconds', sa.Integer(), nullable=False, server_default='60'))
        batch_op.add_column(sa.Column('owner_first_seconds', sa.Integer(), nullable=False, server_default='15'))
        batch_op.add_column(sa.Column('weight_a', sa.Double(), nullable=False, server_default='3'))
        batch_op.add_column(sa.Column('weight_b', sa.Double(), nullable=False, server_default='2'))
        batch_op.add_column(sa.Column('weight_c', sa.Double(), nullable=False, server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('weight_c')
        batch_op.drop_column('weight_b')
        batch_op.drop_column('weight_a')
        batch_op.drop_column('owner_first_seconds')
        batch_op.drop_column('wrap_up_seconds')
        batch_op.drop_column('offer_seconds')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('wrap_up_deadline')
        batch_op.drop_column('disposition_note')

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('missed_offers')
        batch_op.drop_column('capacity_mail')
        batch_op.drop_column('capacity_chat')
        batch_op.drop_column('capacity_call')
        batch_op.drop_column('away_reason')

    with op.batch_alter_table('conversation_events', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_events_conversation_at')

    op.drop_table('conversation_events')
    with op.batch_alter_table('status_periods', schema=None) as batch_op:
        batch_op.drop_index('ix_status_periods_agent_started')

    op.drop_table('status_periods')
    op.drop_table('queue_skills')
    with op.batch_alter_table('live_sockets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_sockets_agent_id'))

    op.drop_table('live_sockets')
    op.drop_table('dispositions')
    op.drop_table('agent_skills')
    op.drop_table('skills')
