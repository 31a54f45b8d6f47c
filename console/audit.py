"""The audit trail: who viewed or changed which customer, ticket or conversation, and when.

Customer records are personal data; this is what answers "who looked at my data" (GDPR).
Entries are written in the same transaction as the change they describe.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console.models import AuditEvent, utcnow

VIEW, CREATE, UPDATE, MERGE, HANDOFF, NOTE, COMMENT = "view", "create", "update", "merge", "handoff", "note", "comment"
EXPORT, ERASE, PASSWORD = "export", "erase", "password"
DEACTIVATE, REACTIVATE, SECOND_FACTOR = "deactivate", "reactivate", "second factor"
CUSTOMER, TICKET, CONVERSATION, AGENT = "customer", "ticket", "conversation", "agent"
# What admins configure; the general dispositions are one list, recorded under id 0.
QUEUE, SKILL, DISPOSITIONS, CHAT_SITE = "queue", "skill", "dispositions", "chat_site"


def record(session: AsyncSession, agent_id: int | None, action: str, entity: str, entity_id: int,
           detail: str | None = None) -> None:
    session.add(AuditEvent(agent_id=agent_id, action=action, entity=entity, entity_id=entity_id,
                           detail=(detail or "")[:500] or None, at=utcnow()))


async def trail(session: AsyncSession, entity: str, entity_id: int, limit: int = 50) -> list[AuditEvent]:
    """The newest entries about one record, with who made them."""
    rows = await session.scalars(
        select(AuditEvent).where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
        .options(selectinload(AuditEvent.agent)).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit))
    return list(rows)
