"""add stock adjustments, stocktakes, inventory alerts and reservations

Also gives every user a default warehouse (users.default_warehouse_id), which closes the
users <-> warehouses reference cycle (warehouses.manager_user_id -> users).

Revision ID: b7e9a1c3d582
Revises: 8d4b6f0a2e17
Create Date: 2024-07-22 08:31:55.260944

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7e9a1c3d582"
down_revision: str | Sequence[str] | None = "8d4b6f0a2e17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

adjustment_reason = postgresql.ENUM(
    "stocktake",
    "damage",
    "loss",
    "found",
    "correction",
    "expiry",
    "other",
    name="adjustment_reason",
    create_type=False,
)
stocktake_status = postgresql.ENUM(
    "planned", "in_progress", "completed", "cancelled", name="stocktake_status", create_type=False
)
alert_severity = postgresql.ENUM(
    "low", "medium", "high", "critical", name="alert_severity", create_type=False
)

QTY = sa.Numeric(precision=12, scale=2)


def _id() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    bind = op.get_bind()
    adjustment_reason.create(bind, checkfirst=False)
    stocktake_status.create(bind, checkfirst=False)
    alert_severity.create(bind, checkfirst=False)

    op.create_table(
        "stocktakes",
        _id(),
        sa.Column("warehouse_id", sa.UUID(), nullable=False),
        sa.Column("scheduled_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            stocktake_status,
            server_default=sa.text("'planned'::stocktake_status"),
            nullable=False,
        ),
        sa.Column("scheduled_by_user_id", sa.UUID(), nullable=False),
        sa.Column("completed_by_user_id", sa.UUID(), nullable=True),
        sa.Column("completed_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("discrepancy_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("discrepancy_value", sa.Numeric(precision=12, scale=2), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["scheduled_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["completed_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stocktakes_warehouse_id", "stocktakes", ["warehouse_id"])

    op.create_table(
        "stocktake_items",
        _id(),
        sa.Column("stocktake_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("expected_quantity", QTY, nullable=False),
        sa.Column("actual_quantity", QTY, nullable=True),
        sa.Column("discrepancy", QTY, nullable=True),
        sa.Column("counted_by_user_id", sa.UUID(), nullable=True),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["stocktake_id"], ["stocktakes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["counted_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "stocktake_id", "part_id", name="uq_stocktake_items_stocktake_id_part_id"
        ),
    )

    op.create_table(
        "stock_adjustments",
        _id(),
        sa.Column("warehouse_id", sa.UUID(), nullable=False),
        sa.Column(
            "adjustment_date",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("reason", adjustment_reason, nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("stocktake_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("total_items_adjusted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("approved_by_user_id", sa.UUID(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["stocktake_id"], ["stocktakes.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["approved_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stock_adjustments_warehouse_id", "stock_adjustments", ["warehouse_id"])

    op.create_table(
        "stock_adjustment_items",
        _id(),
        sa.Column("stock_adjustment_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("quantity_before", QTY, nullable=False),
        sa.Column("quantity_after", QTY, nullable=False),
        sa.Column("quantity_change", QTY, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["stock_adjustment_id"], ["stock_adjustments.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "stock_adjustment_id", "part_id", name="uq_stock_adjustment_items_adjustment_part"
        ),
    )

    op.create_table(
        "inventory_alerts",
        _id(),
        sa.Column("warehouse_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("alert_type", sa.String(length=50), nullable=False),
        sa.Column(
            "severity",
            alert_severity,
            server_default=sa.text("'medium'::alert_severity"),
            nullable=False,
        ),
        sa.Column("threshold_value", QTY, nullable=True),
        sa.Column("current_value", QTY, nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.UUID(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["resolved_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_inventory_alerts_active",
        "inventory_alerts",
        ["warehouse_id", "part_id"],
        postgresql_where=sa.text("is_active"),
    )

    op.create_table(
        "inventory_reservations",
        _id(),
        sa.Column("inventory_id", sa.UUID(), nullable=False),
        sa.Column("customer_order_id", sa.UUID(), nullable=True),
        sa.Column("quantity", QTY, nullable=False),
        sa.Column("reserved_by_user_id", sa.UUID(), nullable=True),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["inventory_id"], ["inventory.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_order_id"], ["customer_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reserved_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_inventory_reservations_inventory_id", "inventory_reservations", ["inventory_id"]
    )

    # users -> warehouses closes the cycle with warehouses.manager_user_id -> users, so the
    # constraint is added after both tables exist.
    op.add_column("users", sa.Column("default_warehouse_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        "users_default_warehouse_id_fkey",
        "users",
        "warehouses",
        ["default_warehouse_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint("users_default_warehouse_id_fkey", "users", type_="foreignkey")
    op.drop_column("users", "default_warehouse_id")
    op.drop_table("inventory_reservations")
    op.drop_table("inventory_alerts")
    op.drop_table("stock_adjustment_items")
    op.drop_table("stock_adjustments")
    op.drop_table("stocktake_items")
    op.drop_table("stocktakes")
    bind = op.get_bind()
    alert_severity.drop(bind, checkfirst=False)
    stocktake_status.drop(bind, checkfirst=False)
    adjustment_reason.drop(bind, checkfirst=False)
