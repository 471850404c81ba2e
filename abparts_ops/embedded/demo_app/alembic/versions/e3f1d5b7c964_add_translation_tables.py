"""add translation tables and users.preferred_language

Revision ID: e3f1d5b7c964
Revises: b7e9a1c3d582
Create Date: 2024-09-09 14:20:37.993215

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e3f1d5b7c964"
down_revision: str | Sequence[str] | None = "b7e9a1c3d582"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _language_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["language_code"], ["supported_languages.code"], onupdate="CASCADE"
    )


def upgrade() -> None:
    languages = op.create_table(
        "supported_languages",
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("native_name", sa.String(length=100), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.bulk_insert(
        languages,
        [
            {"code": "en", "name": "English", "native_name": "English", "sort_order": 1},
            {"code": "el", "name": "Greek", "native_name": "Ελληνικά", "sort_order": 2},
            {"code": "ar", "name": "Arabic", "native_name": "العربية", "sort_order": 3},
            {"code": "es", "name": "Spanish", "native_name": "Español", "sort_order": 4},
        ],
    )

    op.create_table(
        "part_translations",
        _id(),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("language_code", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("search_keywords", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        _language_fk(),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "part_id", "language_code", name="uq_part_translations_part_id_language_code"
        ),
    )

    op.create_table(
        "maintenance_protocol_translations",
        _id(),
        sa.Column("protocol_id", sa.UUID(), nullable=False),
        sa.Column("language_code", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["protocol_id"], ["maintenance_protocols.id"], ondelete="CASCADE"),
        _language_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "protocol_id",
            "language_code",
            name="uq_maintenance_protocol_translations_protocol_language",
        ),
    )

    op.create_table(
        "checklist_item_translations",
        _id(),
        sa.Column("checklist_item_id", sa.UUID(), nullable=False),
        sa.Column("language_code", sa.String(length=5), nullable=False),
        sa.Column("item_description", sa.Text(), nullable=False),
        sa.Column("item_category", sa.String(length=100), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["checklist_item_id"], ["protocol_checklist_items.id"], ondelete="CASCADE"
        ),
        _language_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "checklist_item_id",
            "language_code",
            name="uq_checklist_item_translations_item_language",
        ),
    )

    op.create_table(
        "ui_translations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("language_code", sa.String(length=5), nullable=False),
        sa.Column("translation_key", sa.String(length=255), nullable=False),
        sa.Column("translated_text", sa.Text(), nullable=False),
        sa.Column("context", sa.String(length=100), nullable=True),
        _ts("updated_at"),
        _language_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "language_code", "translation_key", name="uq_ui_translations_language_key"
        ),
    )

    op.add_column(
        "users",
        sa.Column("preferred_language", sa.String(length=5), server_default="en", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("users", "preferred_language")
    op.drop_table("ui_translations")
    op.drop_table("checklist_item_translations")
    op.drop_table("maintenance_protocol_translations")
    op.drop_table("part_translations")
    op.drop_table("supported_languages")
