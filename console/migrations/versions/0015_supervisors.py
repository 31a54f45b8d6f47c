"""supervisors: queues' service-level and abandon thresholds, leases, hourly statistics; deactivated agents

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUE_COLUMNS = (('service_level_seconds', '20'), ('service_level_goal', '80'), ('short_abandon_seconds', '5'),
                 ('longest_wait_seconds', '60'))


def figures() -> list[sa.Column[int]]:
    """The columns of the figures, the same in the hourly tables per queue and per agent."""
    return [
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            'offered', 'answered', 'answered_in_threshold', 'abandoned', 'short_abandoned')),
        sa.Column('answer_wait_ms', sa.BigInteger(), nullable=False),
        sa.Column('handled', sa.Integer(), nullable=False),
        sa.Column('talk_ms', sa.BigInteger(), nullable=False),
        sa.Column('wrap_ms', sa.BigInteger(), nullable=False),
        sa.Column('wrap_timeouts', sa.Integer(), nullable=False),
        sa.Column('rated', sa.Integer(), nullable=False),
        sa.Column('rating_sum', sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    # Columns with a server default are added in place on both databases: no table copy.
    for name, default in QUEUE_COLUMNS:
        op.add_column('queues', sa.Column(name, sa.Integer(), server_default=sa.text(default), nullable=False))
    op.create_index('ix_conversation_events_at', 'conversation_events', ['at'], unique=False)
    op.create_index('ix_conversations_rated', 'conversations', ['rated_at'], unique=False,
                    sqlite_where=sa.text('rated_at IS NOT NULL'), postgresql_where=sa.text('rated_at IS NOT NULL'))
    op.create_table(
        'leases',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('holder', sa.String(length=100), nullable=False),
        sa.Column('until', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_leases')),
    )
    op.create_table(
        'stat_intervals',
        sa.Column('start', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        *figures(),
        sa.PrimaryKeyConstraint('start', 'queue_id', 'channel', name=op.f('pk_stat_intervals')),
    )
    op.create_table(
        'stat_agents',
        sa.Column('start', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        *figures(),
        sa.PrimaryKeyConstraint('start', 'agent_id', name=op.f('pk_stat_agents')),
    )
    op.create_table(
        'stat_dispositions',
        sa.Column('start', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('start', 'queue_id', 'channel', 'code', name=op.f('pk_stat_dispositions')),
    )
    op.create_table(
        'rollup_cursors',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('zone', sa.String(length=64), nullable=False),
        sa.Column('seen_until', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('backfill_from', console.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('backfill_next', console.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('thresholds', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_cursors')),
    )
    op.add_column('agents', sa.Column('deactivated_at', console.models.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch_op:
        batch_op.drop_column('deactivated_at')
    op.drop_table('rollup_cursors')
    op.drop_table('stat_dispositions')
    op.drop_table('stat_agents')
    op.drop_table('stat_intervals')
    op.drop_table('leases')
    op.drop_index('ix_conversations_rated', table_name='conversations')
    op.drop_index('ix_conversation_events_at', table_name='conversation_events')
    with op.batch_alter_table('queues') as batch_op:
        for name, _ in reversed(QUEUE_COLUMNS):
            batch_op.drop_column(name)
