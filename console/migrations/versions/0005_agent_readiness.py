"""agent readiness: per-channel ready columns and the idle order, each with a partial index

Picking an agent used to count every candidate's offers and open conversations; the answer now
lives on the agent row (kept by console.readiness), so picking walks one small index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = ('call', 'chat', 'mail')


def _work(channel: str) -> str:
    """The agent's ringing offers and open conversations of `channel`, as the code counted them."""
    # Built from this module's constants only, never from input.
    return (f"((SELECT count(*) FROM offers o JOIN conversations c ON c.id = o.conversation_id "  # noqa: S608
            f"WHERE o.agent_id = agents.id AND o.state = 'pending' AND c.channel = '{channel}') + "
            f"(SELECT count(*) FROM conversations c WHERE c.agent_id = agents.id "
            f"AND c.state IN ('active', 'wrap_up') AND c.channel = '{channel}'))")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_agents_ready_by_idle', table_name='agents')
    for channel in CHANNELS:
        op.add_column('agents', sa.Column(f'ready_{channel}', sa.Boolean(), server_default=sa.false(),
                                          nullable=False))
    op.add_column('agents', sa.Column('ready_since', sa.DateTime(timezone=True), nullable=True))
    present = "status IN ('available', 'busy')"
    no_call = f"{_work('call')} = 0"
    op.execute(
        "UPDATE agents SET ready_since = coalesce(idle_since, status_since), "  # noqa: S608
        f"ready_call = ({present} AND {no_call} AND capacity_call >= 1 AND extension IS NOT NULL), "
        f"ready_chat = ({present} AND {no_call} AND {_work('chat')} < capacity_chat), "
        f"ready_mail = ({present} AND {no_call} AND {_work('mail')} < capacity_mail)")
    for channel in CHANNELS:
        op.create_index(f'ix_agents_ready_{channel}', 'agents', ['ready_since', 'id'], unique=False,
                        sqlite_where=sa.text(f'ready_{channel} = 1'), postgresql_where=sa.text(f'ready_{channel}'))


def downgrade() -> None:
    for channel in CHANNELS:
        op.drop_index(f'ix_agents_ready_{channel}', table_name='agents')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('ready_since')
        for channel in CHANNELS:
            batch_op.drop_column(f'ready_{channel}')
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_agents_ready_by_idle', 'agents', [sa.text('coalesce(idle_since, status_since)'), 'id'],
                        unique=False, postgresql_where=sa.text("status IN ('available', 'busy')"))
