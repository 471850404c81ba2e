"""add maintenance protocols, checklist items, executions and reminders

Revision ID: 8d4b6f0a2e17
Revises: 5c2f8b1e7a94
Create Date: 2024-06-02 11:48:09.117340

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8d4b6f0a2e17"
down_revision: str | Sequence[str] | None = "5c2f8b1e7a94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

protocol_type = postgresql.ENUM(
    "daily", "weekly", "scheduled", "custom", name="protocol_type", create_type=False
)
execution_status = postgresql.ENUM(
    "in_progress", "completed", "skipped", "failed", name="execution_status", create_type=False
)
# created in 5c2f8b1e7a94, shared with machine_maintenance
maintenance_type = postgresql.ENUM(name="maintenance_type", create_type=False)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    protocol_type.create(bind, checkfirst=False)
    execution_status.create(bind, checkfirst=False)

    op.create_table(
        "maintenance_protocols",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("protocol_type", protocol_type, nullable=False),
        sa.Column("service_interval_hours", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("is_recurring", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "machine_model",
            sa.String(length=100),
            nullable=True,
            comment="NULL means the protocol applies to every model",
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("display_order", sa.Integer(), server_default="0", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "service_interval_hours IS NULL OR service_interval_hours > 0",
            name="ck_maintenance_protocols_interval_positive",
        ),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "name", "machine_model", name="uq_maintenance_protocols_name_machine_model"
        ),
        comment="Maintenance protocols (daily, weekly, service intervals) per machine model.",
    )

    op.create_table(
        "protocol_checklist_items",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("protocol_id", sa.UUID(), nullable=False),
        sa.Column("item_order", sa.Integer(), nullable=False),
        sa.Column("item_description", sa.Text(), nullable=False),
        sa.Column("item_type", sa.String(length=50), server_default="check", nullable=False),
        sa.Column("item_category", sa.String(length=100), nullable=True),
        sa.Column("part_id", sa.UUID(), nullable=True),
        sa.Column("estimated_quantity", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("is_critical", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("estimated_duration_minutes", sa.Integer(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(["protocol_id"], ["maintenance_protocols.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "protocol_id", "item_order", name="uq_protocol_checklist_items_protocol_order"
        ),
    )

    op.create_table(
        "maintenance_executions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=False),
        sa.Column("protocol_id", sa.UUID(), nullable=True),
        sa.Column("performed_by_user_id", sa.UUID(), nullable=False),
        sa.Column(
            "performed_date",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("machine_hours_at_service", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("next_service_due_hours", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column(
            "status",
            execution_status,
            server_default=sa.text("'in_progress'::execution_status"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["protocol_id"], ["maintenance_protocols.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["performed_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_maintenance_executions_machine_id", "maintenance_executions", ["machine_id"]
    )

    op.create_table(
        "maintenance_checklist_completions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("execution_id", sa.UUID(), nullable=False),
        sa.Column("checklist_item_id", sa.UUID(), nullable=False),
        sa.Column(
            "status",
            execution_status,
            server_default=sa.text("'completed'::execution_status"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actual_quantity_used", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("photo_urls", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"], ["maintenance_executions.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["checklist_item_id"], ["protocol_checklist_items.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "execution_id",
            "checklist_item_id",
            name="uq_maintenance_checklist_completions_execution_item",
        ),
    )

    op.create_table(
        "maintenance_reminders",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("machine_id", sa.UUID(), nullable=False),
        sa.Column("protocol_id", sa.UUID(), nullable=True),
        sa.Column("maintenance_type", maintenance_type, nullable=False),
        sa.Column("due_hours", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("reminder_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_user_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "due_hours IS NOT NULL OR due_date IS NOT NULL",
            name="ck_maintenance_reminders_due_given",
        ),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["protocol_id"], ["maintenance_protocols.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["acknowledged_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_maintenance_reminders_open",
        "maintenance_reminders",
        ["machine_id"],
        postgresql_where=sa.text("acknowledged_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("maintenance_reminders")
    op.drop_table("maintenance_checklist_completions")
    op.drop_table("maintenance_executions")
    op.drop_table("protocol_checklist_items")
    op.drop_table("maintenance_protocols")
    bind = op.get_bind()
    execution_status.drop(bind, checkfirst=False)
    protocol_type.drop(bind, checkfirst=False)
