"""drop legacy ai_conversation_log (replaced by ai_messages)

Revision ID: 7c9e1a3b5d08
Revises: d1f3b5e7a9c6
Create Date: 2025-03-11 12:17:58.904416

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c9e1a3b5d08"
down_revision: str | Sequence[str] | None = "d1f3b5e7a9c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("ai_conversation_log")


def downgrade() -> None:
    op.create_table(
        "ai_conversation_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("session_ref", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
