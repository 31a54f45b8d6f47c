"""Satisfaction ratings: after a chat, the customer scores it 1 to 5 with an optional comment.

The rating is kept on the part of the conversation whose agent finished it (the newest part an
agent answered), so with that part's agent and queue it counts per conversation, agent and queue.
Rating again changes the rating; a chat is rated only by its own visitor, and only for a while.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from console.errors import Conflict, InvalidInput, NotFound
from console.models import Chat, Conversation, utcnow
from console.ports import Context

log = logging.getLogger("console.ratings")

SCORES = range(1, 6)
MAX_COMMENT = 2000
RATE_WITHIN = timedelta(days=7)  # after that a rating says more about memory than about the chat


def check(score: object, comment: str) -> tuple[int, str | None]:
    """A score of 1 to 5 and a comment of at most MAX_COMMENT characters, or a clear error."""
    if not isinstance(score, int) or isinstance(score, bool) or score not in SCORES:
        raise InvalidInput("Choose 1 to 5 stars.", field="score")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidInput("A comment has at most %(count)s characters.", field="comment", count=MAX_COMMENT)
    return score, comment or None


async def rate_chat(ctx: Context, visitor_id: int, chat_id: int, score: object, comment: str = "") -> int:
    """The visitor rates their chat once it has ended. Returns the conversation part rated."""
    score, text = check(score, comment)
    async with ctx.transaction() as session:
        chat = await session.scalar(select(Chat).where(Chat.id == chat_id, Chat.visitor_id == visitor_id))
        if chat is None:
            raise NotFound("This chat does not exist, or it is not yours.")
        if chat.ended_at is None:
            raise Conflict("A chat can be rated once it has ended.", field="score")
        if chat.ended_at < utcnow() - RATE_WITHIN:
            raise Conflict("This chat ended too long ago to rate it.", field="score")
        part = await session.scalar(
            select(Conversation).where(Conversation.chat_id == chat_id, Conversation.answered_at.is_not(None),
                                       Conversation.agent_id.is_not(None))
            .order_by(Conversation.id.desc()).limit(1).with_for_update(key_share=True))
        if part is None:
            raise Conflict("Nobody answered this chat, so there is nothing to rate.", field="score")
        part.rating, part.rating_comment, part.rated_at = score, text, utcnow()
        part_id = part.id
    log.info("chat %s rated %s of 5 (conversation %s)", chat_id, score, part_id)
    return part_id
