"""initial schema: organizations, users, warehouses, parts, inventory, orders, machines

Revision ID: 1a7e3c9d5b20
Revises:
Create Date: 2024-03-04 09:12:41.532118

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1a7e3c9d5b20"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

user_role = postgresql.ENUM("user", "admin", "super_admin", name="user_role", create_type=False)
user_status = postgresql.ENUM(
    "active", "inactive", "pending_invitation", "locked", name="user_status", create_type=False
)
organization_type = postgresql.ENUM(
    "oraseas_ee", "bossaqua", "customer", "supplier", name="organization_type", create_type=False
)
part_type = postgresql.ENUM("consumable", name="part_type", create_type=False)
# named "orderstatus" at first; recreated as "order_status" in d1f3b5e7a9c6
orderstatus = postgresql.ENUM(
    "pending", "shipped", "delivered", name="orderstatus", create_type=False
)
transaction_type = postgresql.ENUM(
    "creation",
    "transfer",
    "consumption",
    "adjustment",
    "return",
    name="transaction_type",
    create_type=False,
)
machine_status = postgresql.ENUM(
    "active", "inactive", "maintenance", "decommissioned", name="machine_status", create_type=False
)

ENUMS = (
    user_role,
    user_status,
    organization_type,
    part_type,
    orderstatus,
    transaction_type,
    machine_status,
)


def _uuid_pk() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


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
    for enum_type in ENUMS:
        enum_type.create(bind, checkfirst=False)

    op.create_table(
        "organizations",
        _uuid_pk(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("organization_type", organization_type, nullable=False),
        sa.Column("parent_organization_id", sa.UUID(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("contact_info", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True, comment="ISO 3166-1 alpha-2 code"),
        sa.Column("logo_url", sa.String(length=500), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "country IS NULL OR country ~ '^[A-Z]{2}$'", name="ck_organizations_country_code"
        ),
        sa.ForeignKeyConstraint(
            ["parent_organization_id"], ["organizations.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        comment="Customers, suppliers and the two operating companies (Oraseas EE, BossAqua).",
    )
    op.create_index(
        "ix_organizations_parent_organization_id", "organizations", ["parent_organization_id"]
    )

    op.create_table(
        "users",
        _uuid_pk(),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column(
            "role",
            user_role,
            nullable=False,
            comment="user: customer staff; admin: organization admin; "
            "super_admin: Oraseas EE staff",
        ),
        sa.Column(
            "user_status",
            user_status,
            server_default=sa.text("'active'::user_status"),
            nullable=False,
        ),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("failed_login_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invitation_token", sa.String(length=255), nullable=True),
        sa.Column("invitation_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_verification_token", sa.String(length=255), nullable=True),
        sa.Column("email_verification_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "failed_login_attempts >= 0", name="ck_users_failed_login_attempts_nonnegative"
        ),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_index("ix_users_organization_id", "users", ["organization_id"])
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "ix_users_invitation_token",
        "users",
        ["invitation_token"],
        postgresql_where=sa.text("invitation_token IS NOT NULL"),
    )

    op.create_table(
        "warehouses",
        _uuid_pk(),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("location", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("manager_user_id", sa.UUID(), nullable=True),
        sa.Column("capacity_m3", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["manager_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "name", name="uq_warehouses_organization_id_name"),
    )
    op.create_index("ix_warehouses_manager_user_id", "warehouses", ["manager_user_id"])

    op.create_table(
        "system_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_secret", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("updated_by_user_id", sa.UUID(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(["updated_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("key"),
    )

    op.create_table(
        "part_categories",
        _uuid_pk(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("parent_category_id", sa.UUID(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["parent_category_id"], ["part_categories.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )

    op.create_table(
        "parts",
        _uuid_pk(),
        sa.Column("part_number", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "part_type",
            part_type,
            server_default=sa.text("'consumable'::part_type"),
            nullable=False,
        ),
        sa.Column("is_proprietary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        # made NOT NULL in 0e2c4a6b8d57 after backfilling legacy rows
        sa.Column("unit_of_measure", sa.String(length=50), server_default="pieces", nullable=True),
        sa.Column("manufacturer", sa.String(length=255), nullable=True),
        sa.Column("manufacturer_part_number", sa.String(length=255), nullable=True),
        sa.Column("manufacturer_delivery_time_days", sa.Integer(), nullable=True),
        sa.Column("local_supplier_delivery_time_days", sa.Integer(), nullable=True),
        sa.Column(
            "image_urls",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("category_id", sa.UUID(), nullable=True),
        sa.Column(
            "superseded_by_id",
            sa.UUID(),
            nullable=True,
            comment="Newer part that replaces this one (self-reference)",
        ),
        sa.Column(
            "minimum_order_quantity",
            sa.Numeric(precision=12, scale=2),
            server_default="1",
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "minimum_order_quantity > 0", name="ck_parts_minimum_order_quantity_positive"
        ),
        sa.ForeignKeyConstraint(["category_id"], ["part_categories.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"],
            ["parts.id"],
            ondelete="SET NULL",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("part_number"),
        comment="Catalogue of consumables and bulk materials used by AutoBoss machines.",
    )
    op.create_index("ix_parts_category_id", "parts", ["category_id"])
    op.create_index("ix_parts_name_lower", "parts", [sa.text("lower(name)")])

    op.create_table(
        "part_images",
        _uuid_pk(),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("caption", sa.String(length=255), nullable=True),
        sa.Column("sort_order", sa.Integer(), server_default="0", nullable=False),
        sa.Column("is_primary", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_part_images_part_id", "part_images", ["part_id"])
    op.create_index(
        "uq_part_images_primary_per_part",
        "part_images",
        ["part_id"],
        unique=True,
        postgresql_where=sa.text("is_primary"),
    )

    op.create_table(
        "inventory",
        _uuid_pk(),
        sa.Column("warehouse_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column(
            "current_stock", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column(
            "minimum_stock_recommendation",
            sa.Numeric(precision=12, scale=2),
            server_default="0",
            nullable=False,
        ),
        sa.Column("reorder_threshold_set_by", sa.String(length=50), nullable=True),
        sa.Column("unit_of_measure", sa.String(length=50), server_default="pieces", nullable=False),
        sa.Column("bin_location", sa.String(length=50), nullable=True),
        sa.Column("last_recount_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "last_updated",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("current_stock >= 0", name="ck_inventory_current_stock_nonnegative"),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("warehouse_id", "part_id", name="uq_inventory_warehouse_id_part_id"),
        comment="Stock of each part in each warehouse.",
    )
    op.create_index("ix_inventory_part_id", "inventory", ["part_id"])
    op.create_index(
        "ix_inventory_below_minimum",
        "inventory",
        ["warehouse_id"],
        postgresql_where=sa.text("current_stock < minimum_stock_recommendation"),
    )

    op.create_table(
        "machines",
        _uuid_pk(),
        sa.Column("customer_organization_id", sa.UUID(), nullable=False),
        sa.Column("model_type", sa.String(length=100), nullable=False, comment="e.g. V3.1B, V4.0"),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("serial_number", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            machine_status,
            server_default=sa.text("'active'::machine_status"),
            nullable=False,
        ),
        sa.Column("purchase_date", sa.Date(), nullable=True),
        sa.Column("warranty_expiry_date", sa.Date(), nullable=True),
        sa.Column("installation_location", sa.String(length=255), nullable=True),
        sa.Column("last_maintenance_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_maintenance_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        *_timestamps(),
        sa.CheckConstraint(
            "btrim(serial_number) <> ''", name="ck_machines_serial_number_not_blank"
        ),
        sa.ForeignKeyConstraint(
            ["customer_organization_id"], ["organizations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial_number"),
        comment="AutoBoss machines owned by customer organizations.",
    )
    op.create_index(
        "ix_machines_customer_organization_id", "machines", ["customer_organization_id"]
    )

    op.create_table(
        "transactions",
        _uuid_pk(),
        sa.Column("sequence_no", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("transaction_type", transaction_type, nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("from_warehouse_id", sa.UUID(), nullable=True),
        sa.Column("to_warehouse_id", sa.UUID(), nullable=True),
        sa.Column("machine_id", sa.UUID(), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("unit_of_measure", sa.String(length=50), nullable=False),
        sa.Column("performed_by_user_id", sa.UUID(), nullable=False),
        sa.Column(
            "transaction_date",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("reference_number", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("quantity > 0", name="ck_transactions_quantity_positive"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["from_warehouse_id"], ["warehouses.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["to_warehouse_id"], ["warehouses.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["machine_id"], ["machines.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["performed_by_user_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sequence_no"),
        comment="Audit trail of every parts movement.",
    )
    op.create_index(
        "ix_transactions_transaction_date_desc",
        "transactions",
        [sa.text("transaction_date DESC")],
    )
    op.create_index(
        "ix_transactions_part_id_transaction_date",
        "transactions",
        ["part_id", "transaction_date"],
    )

    op.execute("CREATE SEQUENCE customer_order_number_seq START WITH 1000")
    op.create_table(
        "customer_orders",
        _uuid_pk(),
        sa.Column(
            "order_number",
            sa.Integer(),
            server_default=sa.text("nextval('customer_order_number_seq'::regclass)"),
            nullable=False,
            comment="Human-facing order number, from customer_order_number_seq",
        ),
        sa.Column("customer_organization_id", sa.UUID(), nullable=False),
        sa.Column("oraseas_organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "order_date", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expected_delivery_date", sa.Date(), nullable=True),
        sa.Column("actual_delivery_date", sa.Date(), nullable=True),
        sa.Column(
            "status",
            orderstatus,
            server_default=sa.text("'pending'::orderstatus"),
            nullable=False,
        ),
        sa.Column("ordered_by_user_id", sa.UUID(), nullable=True),
        sa.Column("shipped_by_user_id", sa.UUID(), nullable=True),
        sa.Column("total_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "total_amount IS NULL OR total_amount >= 0",
            name="ck_customer_orders_total_amount_nonnegative",
        ),
        sa.ForeignKeyConstraint(
            ["customer_organization_id"], ["organizations.id"], ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["oraseas_organization_id"], ["organizations.id"], ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(["ordered_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["shipped_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_number"),
    )
    op.execute("ALTER SEQUENCE customer_order_number_seq OWNED BY customer_orders.order_number")
    op.create_index(
        "ix_customer_orders_customer_organization_id_order_date",
        "customer_orders",
        ["customer_organization_id", "order_date"],
    )

    op.create_table(
        "customer_order_items",
        _uuid_pk(),
        sa.Column("customer_order_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("quantity > 0", name="ck_customer_order_items_quantity_positive"),
        sa.ForeignKeyConstraint(["customer_order_id"], ["customer_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "customer_order_id", "line_number", name="uq_customer_order_items_order_line"
        ),
    )

    op.create_table(
        "supplier_orders",
        _uuid_pk(),
        sa.Column("ordering_organization_id", sa.UUID(), nullable=False),
        sa.Column("supplier_organization_id", sa.UUID(), nullable=True),
        sa.Column("supplier_name", sa.String(length=255), nullable=False),
        sa.Column(
            "order_date", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expected_delivery_date", sa.Date(), nullable=True),
        sa.Column("actual_delivery_date", sa.Date(), nullable=True),
        sa.Column(
            "status",
            orderstatus,
            server_default=sa.text("'pending'::orderstatus"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column("total_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["ordering_organization_id"], ["organizations.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["supplier_organization_id"], ["organizations.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_supplier_orders_ordering_organization_id",
        "supplier_orders",
        ["ordering_organization_id"],
    )

    op.create_table(
        "supplier_order_items",
        _uuid_pk(),
        sa.Column("supplier_order_id", sa.UUID(), nullable=False),
        sa.Column("part_id", sa.UUID(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column(
            "received_quantity",
            sa.Numeric(precision=12, scale=2),
            server_default="0",
            nullable=False,
        ),
        *_timestamps(),
        sa.ForeignKeyConstraint(["supplier_order_id"], ["supplier_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_id"], ["parts.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "supplier_order_id", "line_number", name="uq_supplier_order_items_order_line"
        ),
    )


def downgrade() -> None:
    op.drop_table("supplier_order_items")
    op.drop_table("supplier_orders")
    op.drop_table("customer_order_items")
    op.drop_table("customer_orders")
    op.execute("DROP SEQUENCE IF EXISTS customer_order_number_seq")
    op.drop_table("transactions")
    op.drop_table("machines")
    op.drop_table("inventory")
    op.drop_table("part_images")
    op.drop_table("parts")
    op.drop_table("part_categories")
    op.drop_table("system_settings")
    op.drop_table("warehouses")
    op.drop_table("users")
    op.drop_table("organizations")
    bind = op.get_bind()
    for enum_type in reversed(ENUMS):
        enum_type.drop(bind, checkfirst=False)
