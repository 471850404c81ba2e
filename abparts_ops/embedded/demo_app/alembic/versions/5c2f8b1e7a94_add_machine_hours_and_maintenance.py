"""add machine hours, maintenance records, machine sales and documents

Revision ID: 5c2f8b1e7a94
Revises: 1a7e3c9d5b20
Create Date: 2024-04-17 15:03:22.804511

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5c2f8b1e7a94"
down_revision: str | Sequence[str] | None = "1a7e3c9d5b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

maintenance_type = postgresql.ENUM(
    "scheduled",
    "unscheduled",
    "repair",
    "inspection",
    "cleaning",
    "calibration",
    "other",
    name="maintenance_type",
    create_type=False,
)


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _updated_at() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    maintenance_type.create(op.get_bind(), checkfirst=False)

    op.create_table(
        "machine_hours",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=False),
        sa.Column("recorded_by_user_id", sa.UUID(), nullable=False),
        sa.Column("hours_value", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column(
            "recorded_date",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("reading_source", sa.String(length=20), server_default="manual", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("is_verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _created_at(),
        _updated_at(),
        sa.CheckConstraint("hours_value >= 0", name="ck_machine_hours_hours_value_nonnegative"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recorded_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_machine_hours_machine_id_recorded_date",
        "machine_hours",
        ["machine_id", sa.text("recorded_date DESC")],
    )

    op.create_table(
        "machine_maintenance",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=False),
        sa.Column("maintenance_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("maintenance_type", maintenance_type, nullable=False),
        sa.Column("performed_by_user_id", sa.UUID(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("hours_spent", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("cost", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("next_maintenance_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("machine_hours_at_service", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _created_at(),
        _updated_at(),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["performed_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_machine_maintenance_machine_id", "machine_maintenance", ["machine_id"])

    op.create_table(
        "maintenance_part_usage",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("maintenance_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("warehouse_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["maintenance_id"], ["machine_maintenance.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_maintenance_part_usage_maintenance_id", "maintenance_part_usage", ["maintenance_id"]
    )

    op.create_table(
        "machine_part_compatibility",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_model_type", sa.String(length=100), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("is_recommended", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "machine_model_type", "part_id", name="uq_machine_part_compatibility_model_part"
        ),
    )

    op.create_table(
        "machine_sales",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=False),
        sa.Column("from_organization_id", sa.UUID(), nullable=False),
        sa.Column("to_organization_id", sa.UUID(), nullable=False),
        sa.Column("sale_date", sa.Date(), nullable=False),
        sa.Column("sale_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column("performed_by_user_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["from_organization_id"], ["organizations.id"], ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(["to_organization_id"], ["organizations.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["performed_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_machine_sales_machine_id", "machine_sales", ["machine_id"])

    op.create_table(
        "machine_documents",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("document_url", sa.String(length=1000), nullable=False),
        sa.Column("document_type", sa.String(length=50), nullable=True),
        sa.Column("uploaded_by_user_id", sa.UUID(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_machine_documents_machine_id", "machine_documents", ["machine_id"])


def downgrade() -> None:
    op.drop_table("machine_documents")
    op.drop_table("machine_sales")
    op.drop_table("machine_part_compatibility")
    op.drop_table("maintenance_part_usage")
    op.drop_table("machine_maintenance")
    op.drop_table("machine_hours")
    maintenance_type.drop(op.get_bind(), checkfirst=False)
