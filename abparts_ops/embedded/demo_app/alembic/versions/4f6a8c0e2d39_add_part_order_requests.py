"""add part order requests, part suppliers and pricing; add 'bulk_material' part type

Revision ID: 4f6a8c0e2d39
Revises: c9b1e3d5f7a2
Create Date: 2024-12-03 13:26:50.071634

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "4f6a8c0e2d39"
down_revision: str | Sequence[str] | None = "c9b1e3d5f7a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

part_order_status = postgresql.ENUM(
    "requested",
    "approved",
    "ordered",
    "shipped",
    "received",
    "rejected",
    "cancelled",
    name="part_order_status",
    create_type=False,
)

QTY = sa.Numeric(precision=12, scale=2)
MONEY = sa.Numeric(precision=12, scale=2)


def _id() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    # PostgreSQL >= 12 accepts ADD VALUE inside the migration's transaction; the new label
    # must not be used before that transaction commits, so nothing below refers to it.
    op.execute("ALTER TYPE part_type ADD VALUE IF NOT EXISTS 'bulk_material'")

    part_order_status.create(op.get_bind(), checkfirst=False)

    op.create_table(
        "part_order_requests",
        _id(),
        sa.Column("request_number", sa.String(length=50), nullable=False),
        sa.Column("customer_organization_id", sa.UUID(), nullable=False),
        sa.Column("supplier_organization_id", sa.UUID(), nullable=True),
        sa.Column(
            "status",
            part_order_status,
            server_default=sa.text("'requested'::part_order_status"),
            nullable=False,
        ),
        sa.Column("priority", sa.String(length=20), server_default="normal", nullable=False),
        sa.Column("requested_by_user_id", sa.UUID(), nullable=False),
        sa.Column("approved_by_user_id", sa.UUID(), nullable=True),
        _ts("requested_date"),
        sa.Column("expected_delivery_date", sa.Date(), nullable=True),
        sa.Column("actual_delivery_date", sa.Date(), nullable=True),
        sa.Column("receiving_warehouse_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "priority IN ('low', 'normal', 'high', 'urgent')",
            name="ck_part_order_requests_priority",
        ),
        sa.ForeignKeyConstraint(
            ["customer_organization_id"], ["organizations.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_organization_id"], ["organizations.id"], ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["requested_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["approved_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["receiving_warehouse_id"], ["warehouses.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_number"),
    )
    op.create_index(
        "ix_part_order_requests_customer_organization_id",
        "part_order_requests",
        ["customer_organization_id"],
    )

    op.create_table(
        "part_order_items",
        _id(),
        sa.Column("order_request_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("quantity", QTY, nullable=False),
        sa.Column("unit_price", MONEY, nullable=True),
        sa.Column("received_quantity", QTY, server_default="0", nullable=False),
        sa.Column("destination_warehouse_id", sa.UUID(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["order_request_id"], ["part_order_requests.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["destination_warehouse_id"], ["warehouses.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "order_request_id", "part_id", name="uq_part_order_items_order_request_id_part_id"
        ),
    )

    op.create_table(
        "part_order_status_history",
        _id(),
        sa.Column("order_request_id", sa.UUID(), nullable=False),
        sa.Column("from_status", part_order_status, nullable=True),
        sa.Column("to_status", part_order_status, nullable=False),
        sa.Column("changed_by_user_id", sa.UUID(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _ts("changed_at"),
        sa.ForeignKeyConstraint(
            ["order_request_id"], ["part_order_requests.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["changed_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_part_order_status_history_order_request_id",
        "part_order_status_history",
        ["order_request_id"],
    )

    op.create_table(
        "part_suppliers",
        _id(),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("supplier_organization_id", sa.UUID(), nullable=False),
        sa.Column("supplier_part_number", sa.String(length=255), nullable=True),
        sa.Column("lead_time_days", sa.Integer(), nullable=True),
        sa.Column("unit_cost", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column("is_preferred", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "lead_time_days IS NULL OR lead_time_days >= 0",
            name="ck_part_suppliers_lead_time_nonnegative",
        ),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["supplier_organization_id"], ["organizations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "part_id", "supplier_organization_id", name="uq_part_suppliers_part_id_supplier"
        ),
    )

    op.create_table(
        "part_pricing",
        _id(),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=True),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column("valid_from", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name="ck_part_pricing_valid_range"
        ),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_part_pricing_part_id", "part_pricing", ["part_id"])


def downgrade() -> None:
    op.drop_table("part_pricing")
    op.drop_table("part_suppliers")
    op.drop_table("part_order_status_history")
    op.drop_table("part_order_items")
    op.drop_table("part_order_requests")
    part_order_status.drop(op.get_bind(), checkfirst=False)

    # PostgreSQL cannot drop an enum label: recreate part_type without 'bulk_material'.
    # (Compare as text so this also works when the label was added in this transaction.)
    op.execute("UPDATE parts SET part_type = 'consumable' WHERE part_type::text = 'bulk_material'")
    op.execute("ALTER TYPE part_type RENAME TO part_type_old")
    op.execute("CREATE TYPE part_type AS ENUM ('consumable')")
    op.execute("ALTER TABLE parts ALTER COLUMN part_type DROP DEFAULT")
    op.execute(
        "ALTER TABLE parts ALTER COLUMN part_type TYPE part_type USING part_type::text::part_type"
    )
    op.execute("ALTER TABLE parts ALTER COLUMN part_type SET DEFAULT 'consumable'::part_type")
    op.execute("DROP TYPE part_type_old")
