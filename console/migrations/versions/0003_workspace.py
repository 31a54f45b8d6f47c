"""workspace: notes, tickets, handoffs, the customer picture, search, merges, canned responses, audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:02:17.247942
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('entity', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_audit_events_agent_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_agent_at', ['agent_id', 'at'], unique=False)
        batch_op.create_index('ix_audit_events_entity', ['entity', 'entity_id', 'at'], unique=False)

    op.create_table('canned_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['updated_by_id'], ['agents.id'], name=op.f('fk_canned_responses_updated_by_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_responses')),
    sa.UniqueConstraint('title', name=op.f('uq_canned_responses_title'))
    )
    op.create_table('addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('postal', 'billing', 'delivery', name='address_kind', native_enum=False, length=20), nullable=False),
    sa.Column('street', sa.String(length=200), nullable=False),
    sa.Column('postal_code', sa.String(length=20), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_addresses_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_addresses'))
    )
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_addresses_customer_id'), ['customer_id'], unique=False)

    op.create_table('contracts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.Enum('quote', 'active', 'ended', 'cancelled', name='contract_status', native_enum=False, length=20), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_contracts_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contracts'))
    )
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.create_index('ix_contracts_customer_starts', ['customer_id', 'starts_on'], unique=False)

    op.create_table('customer_merges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kept_id', sa.Integer(), nullable=True),
    sa.Column('merged_id', sa.Integer(), nullable=False),
    sa.Column('merged_name', sa.String(length=200), nullable=False),
    sa.Column('snapshot', sa.Text(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_customer_merges_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['kept_id'], ['customers.id'], name=op.f('fk_customer_merges_kept_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_merges'))
    )
    with op.batch_alter_table('customer_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_merges_kept_id'), ['kept_id'], unique=False)

    op.create_table('search_terms',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('term', sa.String(length=100).with_variant(sa.VARCHAR(length=100, collation='C'), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_search_terms_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', 'term', name=op.f('pk_search_terms'))
    )
    with op.batch_alter_table('search_terms', schema=None) as batch_op:
        batch_op.create_index('ix_search_terms_term', ['term'], unique=False)

    op.create_table('handoffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('from_agent_id', sa.Integer(), nullable=True),
    sa.Column('to_agent_id', sa.Integer(), nullable=True),
    sa.Column('to_queue_id', sa.Integer(), nullable=True),
    sa.Column('mode', sa.Enum('cold', 'warm', name='handoff_mode', native_enum=False, length=20), nullable=False),
    sa.Column('state', sa.Enum('pending', 'accepted', 'declined', 'cancelled', name='handoff_state', native_enum=False, length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('next_conversation_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_handoffs_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_agent_id'], ['agents.id'], name=op.f('fk_handoffs_from_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['next_conversation_id'], ['conversations.id'], name=op.f('fk_handoffs_next_conversation_id_conversations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['to_agent_id'], ['agents.id'], name=op.f('fk_handoffs_to_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['to_queue_id'], ['queues.id'], name=op.f('fk_handoffs_to_queue_id_queues'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoffs'))
    )
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoffs_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index('ix_handoffs_to_agent_state', ['to_agent_id', 'state'], unique=False)

    op.create_table('ticket_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('field', sa.String(length=40), nullable=False),
    sa.Column('old', sa.String(length=300), nullable=True),
    sa.Column('new', sa.String(length=300), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_ticket_changes_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_changes_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_changes'))
    )
    with op.batch_alter_table('ticket_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_changes_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticket_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_ticket_comments_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_comments_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_comments'))
    )
    with op.batch_alter_table('ticket_comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_comments_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_conversations_channel_external_id'), type_='unique')
        batch_op.create_index('uq_conversations_channel_external_id', ['channel', 'external_id'], unique=True, sqlite_where=sa.text('parent_id IS NULL'), postgresql_where=sa.text('parent_id IS NULL'))
        batch_op.create_index('ix_conversations_channel_external_id', ['channel', 'external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversations_parent_id'), ['parent_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_conversations_parent_id_conversations'), 'conversations', ['parent_id'], ['id'], ondelete='SET NULL')

    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_agents_ready_by_idle', 'agents', [sa.text('coalesce(idle_since, status_since)'), 'id'],
                        postgresql_where=sa.text("status IN ('available', 'busy')"))
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('viewing_customer_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_agents_viewing_customer_id'), ['viewing_customer_id'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('consent_email', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('consent_phone', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('created_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.create_index('ix_tickets_assignee_status', ['assignee_id', 'status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_tickets_queue_id_queues'), 'queues', ['queue_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_tickets_created_by_id_agents'), 'agents', ['created_by_id'], ['id'], ondelete='SET NULL')

    _index_existing_customers()


def _index_existing_customers() -> None:
    """Customers stored before this revision get their search terms."""
    from console.search import customer_terms

    bind = op.get_bind()
    terms_table = sa.table('search_terms', sa.column('customer_id', sa.Integer()), sa.column('term', sa.String()))
    last = 0
    while True:
        customers = bind.execute(sa.text(
            "SELECT id, name, company FROM customers WHERE id > :last ORDER BY id LIMIT 5000"), {"last": last}).all()
        if not customers:
            return
        last = customers[-1][0]
        points: dict[int, list[tuple[str, str]]] = {}
        for customer_id, kind, normalized in bind.execute(sa.text(
                "SELECT customer_id, kind, normalized FROM contact_points WHERE customer_id > :first "
                "AND customer_id <= :last"), {"first": customers[0][0] - 1, "last": last}):
            points.setdefault(customer_id, []).append((kind, normalized))
        rows = [{"customer_id": customer_id, "term": term} for customer_id, name, company in customers
                for term in customer_terms(name, company, points.get(customer_id, []))]
        if rows:
            op.bulk_insert(terms_table, rows)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tickets_created_by_id_agents'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_tickets_queue_id_queues'), type_='foreignkey')
        batch_op.drop_index('ix_tickets_assignee_status')
        batch_op.drop_column('version')
        batch_op.drop_column('due_at')
        batch_op.drop_column('created_by_id')
        batch_op.drop_column('queue_id')

    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_agents_ready_by_idle', table_name='agents')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agents_viewing_customer_id'))
        batch_op.drop_column('viewing_customer_id')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('version')
        batch_op.drop_column('consent_phone')
        batch_op.drop_column('consent_email')
        batch_op.drop_column('segment')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_conversations_parent_id_conversations'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_conversations_parent_id'))
        batch_op.drop_index('ix_conversations_channel_external_id')
        batch_op.drop_index('uq_conversations_channel_external_id', sqlite_where=sa.text('parent_id IS NULL'), postgresql_where=sa.text('parent_id IS NULL'))
        batch_op.create_unique_constraint(batch_op.f('uq_conversations_channel_external_id'), ['channel', 'external_id'])
        batch_op.drop_column('parent_id')

    with op.batch_alter_table('ticket_comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_comments_ticket_id'))

    op.drop_table('ticket_comments')
    with op.batch_alter_table('ticket_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_changes_ticket_id'))

    op.drop_table('ticket_changes')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_index('ix_handoffs_to_agent_state')
        batch_op.drop_index(batch_op.f('ix_handoffs_conversation_id'))

    op.drop_table('handoffs')
    with op.batch_alter_table('search_terms', schema=None) as batch_op:
        batch_op.drop_index('ix_search_terms_term')

    op.drop_table('search_terms')
    with op.batch_alter_table('customer_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_merges_kept_id'))

    op.drop_table('customer_merges')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_index('ix_contracts_customer_starts')

    op.drop_table('contracts')
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_addresses_customer_id'))

    op.drop_table('addresses')
    op.drop_table('canned_responses')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_entity')
        batch_op.drop_index('ix_audit_events_agent_at')

    op.drop_table('audit_events')
