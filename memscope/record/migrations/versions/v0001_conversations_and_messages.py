"""Conversations and their messages.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from memscope.record.tables import LongText, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memscope_conversations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("assistant", sa.String(256), nullable=False),
        sa.Column("title", sa.String(1024)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
    )
    op.create_index("ix_memscope_conversations_user_id", "memscope_conversations", ["user_id"])
    op.create_table(
        "memscope_messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.String(64),
            sa.ForeignKey("memscope_conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", LongText, nullable=False),
        sa.Column("name", sa.String(256)),
        sa.Column("tool_calls", sa.JSON, nullable=False),
        sa.Column("tool_call_id", sa.String(256)),
        sa.Column("model", sa.String(256)),
        sa.Column("temperature", sa.Double),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("latency_ms", sa.Double),
        sa.Column("score", sa.Double),
        sa.Column("reply_to", sa.String(64)),
        sa.Column("selected", sa.Boolean, nullable=False),
        sa.Column("masked", sa.Boolean, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("conversation_id", "position", name="uq_memscope_messages_position"),
    )
    op.create_index("ix_memscope_messages_conversation_id", "memscope_messages", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("memscope_messages")
    op.drop_table("memscope_conversations")
