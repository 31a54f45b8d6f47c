"""mail: the mailboxes read, mail threads and their mails, a conversation's thread, failing addresses

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import console.models

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'mailboxes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('subaddress', sa.Boolean(), nullable=False),
        sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
        sa.Column('last_uid', sa.BigInteger(), nullable=False),
        sa.Column('reader', sa.String(length=100), nullable=True),
        sa.Column('reader_until', console.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('created_at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mailboxes')),
        sa.UniqueConstraint('name', name=op.f('uq_mailboxes_name')),
    )
    op.create_table(
        'mail_threads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mailbox_id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.Column('address', sa.String(length=320), nullable=False),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('follows_id', sa.Integer(), nullable=True),
        sa.Column('created_at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_mail_threads_mailbox_id_mailboxes'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['follows_id'], ['mail_threads.id'],
                                name=op.f('fk_mail_threads_follows_id_mail_threads'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_threads')),
        sa.UniqueConstraint('token', name=op.f('uq_mail_threads_token')),
    )
    op.create_index('ix_mail_threads_address', 'mail_threads', ['address', 'id'], unique=False)
    op.create_table(
        'mails',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('thread_id', sa.Integer(), nullable=False),
        sa.Column('mailbox_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('direction', sa.Enum('in', 'out', name='direction', native_enum=False, length=20), nullable=False),
        sa.Column('header_id', sa.String(length=250), nullable=False),
        sa.Column('refs', sa.Text(), nullable=False),
        sa.Column('from_address', sa.String(length=320), nullable=False),
        sa.Column('from_name', sa.String(length=200), nullable=False),
        sa.Column('reply_to', sa.String(length=320), nullable=False),
        sa.Column('to_addresses', sa.Text(), nullable=False),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('quoted', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=True),
        sa.Column('html', sa.Text(), nullable=True),
        sa.Column('remote_html', sa.Text(), nullable=True),
        sa.Column('automatic', sa.String(length=40), nullable=True),
        sa.Column('problems', sa.Text(), nullable=True),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sent_at', console.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('created_at', console.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('send_state', sa.String(length=20), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', console.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('automatic_reply', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['thread_id'], ['mail_threads.id'], name=op.f('fk_mails_thread_id_mail_threads'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], name=op.f('fk_mails_mailbox_id_mailboxes'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_mails_message_id_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mails')),
        sa.UniqueConstraint('message_id', name=op.f('uq_mails_message_id')),
    )
    op.create_index('ix_mails_to_send', 'mails', ['next_attempt_at'], unique=False,
                    sqlite_where=sa.text("send_state IN ('queued', 'sending')"),
                    postgresql_where=sa.text("send_state IN ('queued', 'sending')"))
    op.create_index('uq_mails_mailbox_header_id', 'mails', ['mailbox_id', 'header_id'], unique=True)
    op.create_index('ix_mails_header_id', 'mails', ['header_id'], unique=False)
    op.create_index('ix_mails_thread_id', 'mails', ['thread_id', 'id'], unique=False)
    # A nullable column that carries its reference, added in place: SQLite cannot add a constraint
    # to a table, but it can add a column with one (its rows start with NULL).
    name = op.f('fk_conversations_mail_thread_id_mail_threads')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f'ALTER TABLE conversations ADD COLUMN mail_thread_id INTEGER CONSTRAINT {name} '
                   'REFERENCES mail_threads (id) ON DELETE SET NULL')
    else:
        op.add_column('conversations', sa.Column('mail_thread_id', sa.Integer(), nullable=True))
        op.create_foreign_key(name, 'conversations', 'mail_threads', ['mail_thread_id'], ['id'], ondelete='SET NULL')
    op.create_index(op.f('ix_conversations_mail_thread_id'), 'conversations', ['mail_thread_id'], unique=False)
    op.add_column('contact_points', sa.Column('failing_since', console.models.UtcDateTime(timezone=True),
                                              nullable=True))
    op.add_column('contact_points', sa.Column('failure', sa.String(length=500), nullable=True))
    op.add_column('attachments', sa.Column('content_id', sa.String(length=250), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attachments') as batch_op:
        batch_op.drop_column('content_id')
    with op.batch_alter_table('contact_points') as batch_op:
        batch_op.drop_column('failure')
        batch_op.drop_column('failing_since')
    with op.batch_alter_table('conversations') as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_conversations_mail_thread_id_mail_threads'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_conversations_mail_thread_id'))
        batch_op.drop_column('mail_thread_id')
    op.drop_index('ix_mails_thread_id', table_name='mails')
    op.drop_index('ix_mails_header_id', table_name='mails')
    op.drop_index('ix_mails_to_send', table_name='mails')
    op.drop_index('uq_mails_mailbox_header_id', table_name='mails')
    op.drop_table('mails')
    op.drop_index('ix_mail_threads_address', table_name='mail_threads')
    op.drop_table('mail_threads')
    op.drop_table('mailboxes')
