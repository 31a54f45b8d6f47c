"""chat: the sites with the widget, their visitors, chats, and the messages' chat and client ids

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:46:07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _add_reference(table: str, column: str, target: str, ondelete: str) -> None:
    """A nullable column that references `target`, added in place. SQLite cannot add a constraint
    to a table, but it can add a column that carries one (its rows start with NULL)."""
    if op.get_bind().dialect.name == 'sqlite':
        name = op.f(f'fk_{table}_{column}_{target}')
        op.execute(f'ALTER TABLE {table} ADD COLUMN {column} INTEGER CONSTRAINT {name} '
                   f'REFERENCES {target} (id) ON DELETE {ondelete}')
        return
    op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
    op.create_foreign_key(op.f(f'fk_{table}_{column}_{target}'), table, target, [column], ['id'], ondelete=ondelete)


def upgrade() -> None:
    op.create_table('chat_sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('origins', sa.Text(), nullable=False),
    sa.Column('secret', sa.String(length=128), nullable=False),
    sa.Column('identity_required', sa.Boolean(), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=True),
    sa.Column('greeting', sa.Text(), nullable=True),
    sa.Column('hours', sa.String(length=500), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('idle_minutes', sa.Integer(), nullable=False),
    sa.Column('created_at', console.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_chat_sites_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_sites')),
    sa.UniqueConstraint('key', name=op.f('uq_chat_sites_key'))
    )
    op.create_table('chat_visitors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('identifier', sa.String(length=320), nullable=True),
    sa.Column('identity', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', console.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', console.models.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_chat_visitors_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['site_id'], ['chat_sites.id'], name=op.f('fk_chat_visitors_site_id_chat_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_visitors')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_chat_visitors_token_hash'))
    )
    with op.batch_alter_table('chat_visitors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_visitors_customer_id'), ['customer_id'], unique=False)

    op.create_table('chats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=False),
    sa.Column('page_url', sa.String(length=2000), nullable=True),
    sa.Column('started_at', console.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', console.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['chat_sites.id'], name=op.f('fk_chats_site_id_chat_sites'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visitor_id'], ['chat_visitors.id'], name=op.f('fk_chats_visitor_id_chat_visitors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chats'))
    )
    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.create_index('uq_chats_open_by_visitor', ['visitor_id'], unique=True, sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    # New columns are added in place (no table copy: conversations and messages are the big tables,
    # and a copy would have to rebuild their partial indexes). Existing rows keep NULL: no chat.
    for table, ondelete in (('conversations', 'SET NULL'), ('messages', 'CASCADE')):
        _add_reference(table, 'chat_id', 'chats', ondelete)
    op.create_index(op.f('ix_conversations_chat_id'), 'conversations', ['chat_id'], unique=False)
    op.add_column('messages', sa.Column('client_id', sa.String(length=64), nullable=True))
    op.add_column('messages', sa.Column('read_at', console.models.UtcDateTime(timezone=True), nullable=True))
    op.create_index('ix_messages_chat_id', 'messages', ['chat_id', 'id'], unique=False)
    op.create_index('uq_messages_chat_author_client', 'messages', ['chat_id', 'author', 'client_id'], unique=True,
                    sqlite_where=sa.text('client_id IS NOT NULL'), postgresql_where=sa.text('client_id IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_messages_chat_id_chats'), type_='foreignkey')
        batch_op.drop_index('uq_messages_chat_author_client', sqlite_where=sa.text('client_id IS NOT NULL'), postgresql_where=sa.text('client_id IS NOT NULL'))
        batch_op.drop_index('ix_messages_chat_id')
        batch_op.drop_column('read_at')
        batch_op.drop_column('client_id')
        batch_op.drop_column('chat_id')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_conversations_chat_id_chats'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_conversations_chat_id'))
        batch_op.drop_column('chat_id')

    with op.batch_alter_table('chats', schema=None) as batch_op:
        batch_op.drop_index('uq_chats_open_by_visitor', sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'))

    op.drop_table('chats')
    with op.batch_alter_table('chat_visitors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_visitors_customer_id'))

    op.drop_table('chat_visitors')
    op.drop_table('chat_sites')
