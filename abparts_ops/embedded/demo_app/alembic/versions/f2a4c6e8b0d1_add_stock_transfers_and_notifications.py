"""add stock transfers, shipments, attachments, notifications and user preferences

Revision ID: f2a4c6e8b0d1
Revises: a5b7d9f1c3e2
Create Date: 2025-05-19 15:51:40.238861

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f2a4c6e8b0d1"
down_revision: str | Sequence[str] | None = "a5b7d9f1c3e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# created in b7e9a1c3d582
alert_severity = postgresql.ENUM(name="alert_severity", create_type=False)

QTY = sa.Numeric(precision=12, scale=2)


def _id() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _jsonb_object(name: str) -> sa.Column:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text("'{}'::jsonb"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "stock_transfers",
        _id(),
        sa.Column("transfer_number", sa.String(length=50), nullable=False),
        sa.Column("from_warehouse_id", sa.UUID(), nullable=False),
        sa.Column("to_warehouse_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("requested_by_user_id", sa.UUID(), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_by_user_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "from_warehouse_id <> to_warehouse_id", name="ck_stock_transfers_distinct_warehouses"
        ),
        sa.ForeignKeyConstraint(["from_warehouse_id"], ["warehouses.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["to_warehouse_id"], ["warehouses.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["requested_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["received_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transfer_number"),
    )

    op.create_table(
        "stock_transfer_items",
        _id(),
        sa.Column("transfer_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("quantity", QTY, nullable=False),
        sa.Column("received_quantity", QTY, nullable=True),
        sa.Column("transaction_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["transfer_id"], ["stock_transfers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stock_transfer_items_transfer_id", "stock_transfer_items", ["transfer_id"])

    op.create_table(
        "transaction_approvals",
        _id(),
        sa.Column("transaction_id", sa.UUID(), nullable=False),
        sa.Column("approver_user_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("comments", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["approver_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "transaction_id",
            "approver_user_id",
            name="uq_transaction_approvals_transaction_id_approver",
        ),
    )

    op.create_table(
        "order_shipments",
        _id(),
        sa.Column("customer_order_id", sa.UUID(), nullable=False),
        sa.Column("carrier", sa.String(length=100), nullable=True),
        sa.Column("tracking_number", sa.String(length=100), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shipped_by_user_id", sa.UUID(), nullable=True),
        sa.Column("package_count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["customer_order_id"], ["customer_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shipped_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_order_shipments_customer_order_id", "order_shipments", ["customer_order_id"]
    )

    op.create_table(
        "order_attachments",
        _id(),
        sa.Column("customer_order_id", sa.UUID(), nullable=True),
        sa.Column("supplier_order_id", sa.UUID(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("storage_path", sa.String(length=1000), nullable=False),
        sa.Column("uploaded_by_user_id", sa.UUID(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint(
            "num_nonnulls(customer_order_id, supplier_order_id) = 1",
            name="ck_order_attachments_exactly_one_order",
        ),
        sa.ForeignKeyConstraint(["customer_order_id"], ["customer_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["supplier_order_id"], ["supplier_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "notifications",
        _id(),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("notification_type", sa.String(length=50), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        _jsonb_object("payload"),
        sa.Column(
            "severity",
            alert_severity,
            server_default=sa.text("'low'::alert_severity"),
            nullable=False,
        ),
        sa.Column("is_read", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_notifications_unread",
        "notifications",
        ["user_id"],
        postgresql_where=sa.text("NOT is_read"),
    )

    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("theme", sa.String(length=20), server_default="light", nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("date_format", sa.String(length=20), server_default="YYYY-MM-DD", nullable=False),
        sa.Column("dashboard_layout", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "email_notifications", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )

    op.create_table(
        "organization_configurations",
        _id(),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("configuration_key", sa.String(length=100), nullable=False),
        sa.Column("value_json", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("updated_by_user_id", sa.UUID(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["updated_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "organization_id",
            "configuration_key",
            name="uq_organization_configurations_org_key",
        ),
    )

    op.create_table(
        "data_export_jobs",
        _id(),
        sa.Column("requested_by_user_id", sa.UUID(), nullable=True),
        sa.Column("export_type", sa.String(length=50), nullable=False),
        _jsonb_object("parameters"),
        sa.Column("status", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("file_path", sa.String(length=1000), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["requested_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("data_export_jobs")
    op.drop_table("organization_configurations")
    op.drop_table("user_preferences")
    op.drop_table("notifications")
    op.drop_table("order_attachments")
    op.drop_table("order_shipments")
    op.drop_table("transaction_approvals")
    op.drop_table("stock_transfer_items")
    op.drop_table("stock_transfers")
