"""add AI assistant tables (sessions, messages, escalations, knowledge base)

Written on the ai-assistant branch in parallel with e3f1d5b7c964 (translations); the two
heads are joined by 6a0d2f4b8c71.

Revision ID: 2b8c4e6a0f13
Revises: b7e9a1c3d582
Create Date: 2024-09-12 10:05:48.402771

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2b8c4e6a0f13"
down_revision: str | Sequence[str] | None = "b7e9a1c3d582"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ai_session_status = postgresql.ENUM(
    "active", "completed", "escalated", "abandoned", name="ai_session_status", create_type=False
)
ai_message_role = postgresql.ENUM(
    "user", "assistant", "system", name="ai_message_role", create_type=False
)
# created in b7e9a1c3d582
alert_severity = postgresql.ENUM(name="alert_severity", create_type=False)


def _id() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _jsonb(name: str) -> sa.Column:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text("'{}'::jsonb"),
        nullable=False,
    )


def upgrade() -> None:
    bind = op.get_bind()
    ai_session_status.create(bind, checkfirst=False)
    ai_message_role.create(bind, checkfirst=False)

    op.create_table(
        "ai_sessions",
        _id(),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=True),
        sa.Column(
            "status",
            ai_session_status,
            server_default=sa.text("'active'::ai_session_status"),
            nullable=False,
        ),
        sa.Column("language", sa.String(length=5), server_default="en", nullable=False),
        sa.Column("problem_description", sa.Text(), nullable=True),
        _jsonb("session_metadata"),
        _ts("started_at"),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_ai_sessions_active_user",
        "ai_sessions",
        ["user_id"],
        postgresql_where=sa.text("status = 'active'::ai_session_status"),
    )

    op.create_table(
        "ai_messages",
        _id(),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("role", ai_message_role, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("message_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(length=100), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["session_id"], ["ai_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_ai_messages_session_id_created_at", "ai_messages", ["session_id", "created_at"]
    )

    op.create_table(
        "ai_message_feedback",
        _id(),
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="ck_ai_message_feedback_rating_range"),
        sa.ForeignKeyConstraint(["message_id"], ["ai_messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "user_id", name="uq_ai_message_feedback_message_user"),
    )

    op.create_table(
        "expert_escalations",
        _id(),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("escalated_by_user_id", sa.UUID(), nullable=False),
        sa.Column("assigned_expert_user_id", sa.UUID(), nullable=True),
        sa.Column(
            "priority",
            alert_severity,
            server_default=sa.text("'medium'::alert_severity"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), server_default="open", nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["session_id"], ["ai_sessions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["escalated_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["assigned_expert_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_expert_escalations_session_id", "expert_escalations", ["session_id"])

    op.create_table(
        "knowledge_documents",
        _id(),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("document_type", sa.String(length=50), nullable=False),
        sa.Column("language", sa.String(length=5), server_default="en", nullable=False),
        sa.Column(
            "machine_models",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("source_file_path", sa.String(length=1000), nullable=True),
        sa.Column("file_hash", sa.String(length=64), nullable=True),
        _jsonb("document_metadata"),
        sa.Column("uploaded_by_user_id", sa.UUID(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["uploaded_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        comment="AI knowledge base documents (migrations managed by the AI service).",
    )
    op.create_index("ix_knowledge_documents_file_hash", "knowledge_documents", ["file_hash"])

    op.create_table(
        "document_chunks",
        _id(),
        sa.Column("document_id", sa.UUID(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "embedding",
            postgresql.ARRAY(postgresql.DOUBLE_PRECISION()),
            nullable=True,
            comment="Embedding vector (float8[]; no pgvector needed)",
        ),
        sa.Column("token_count", sa.Integer(), nullable=True),
        _jsonb("chunk_metadata"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["document_id"], ["knowledge_documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id", "chunk_index", name="uq_document_chunks_document_chunk"),
    )

    # first version of the assistant logged raw prompts here; replaced by ai_messages and
    # dropped in 7c9e1a3b5d08
    op.create_table(
        "ai_conversation_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("session_ref", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("ai_conversation_log")
    op.drop_table("document_chunks")
    op.drop_table("knowledge_documents")
    op.drop_table("expert_escalations")
    op.drop_table("ai_message_feedback")
    op.drop_table("ai_messages")
    op.drop_table("ai_sessions")
    bind = op.get_bind()
    ai_message_role.drop(bind, checkfirst=False)
    ai_session_status.drop(bind, checkfirst=False)
