"""SQLAlchemy models of the ABParts demo application (the schema at the head of its history).

``Base.metadata`` is the app's Alembic ``target_metadata``. The view
``inventory_stock_levels`` is created by a migration and is not described here; the AI
knowledge tables (``knowledge_documents``, ``document_chunks``) are, because the app uses
them, although their migrations are managed elsewhere after the history reset.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every ABParts model."""


# --------------------------------------------------------------------------- enums
class UserRole(enum.StrEnum):
    USER = "user"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    PENDING_INVITATION = "pending_invitation"
    LOCKED = "locked"


class OrganizationType(enum.StrEnum):
    ORASEAS_EE = "oraseas_ee"
    BOSSAQUA = "bossaqua"
    CUSTOMER = "customer"
    SUPPLIER = "supplier"


class PartType(enum.StrEnum):
    CONSUMABLE = "consumable"
    BULK_MATERIAL = "bulk_material"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class TransactionType(enum.StrEnum):
    CREATION = "creation"
    TRANSFER = "transfer"
    CONSUMPTION = "consumption"
    ADJUSTMENT = "adjustment"
    RETURN = "return"


class MachineStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    MAINTENANCE = "maintenance"
    DECOMMISSIONED = "decommissioned"


class MaintenanceType(enum.StrEnum):
    SCHEDULED = "scheduled"
    UNSCHEDULED = "unscheduled"
    REPAIR = "repair"
    INSPECTION = "inspection"
    CLEANING = "cleaning"
    CALIBRATION = "calibration"
    OTHER = "other"


class ProtocolType(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    SCHEDULED = "scheduled"
    CUSTOM = "custom"


class ExecutionStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class AdjustmentReason(enum.StrEnum):
    STOCKTAKE = "stocktake"
    DAMAGE = "damage"
    LOSS = "loss"
    FOUND = "found"
    CORRECTION = "correction"
    EXPIRY = "expiry"
    OTHER = "other"


class StocktakeStatus(enum.StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AlertSeverity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AiSessionStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ESCALATED = "escalated"
    ABANDONED = "abandoned"


class AiMessageRole(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class PartOrderStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    ORDERED = "ordered"
    SHIPPED = "shipped"
    RECEIVED = "received"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


def _pg_enum(py_enum: type[enum.Enum], name: str) -> Enum:
    """A named PostgreSQL enum storing the members' values (not their names)."""
    return Enum(
        py_enum,
        name=name,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


user_role = _pg_enum(UserRole, "user_role")
user_status = _pg_enum(UserStatus, "user_status")
organization_type = _pg_enum(OrganizationType, "organization_type")
part_type = _pg_enum(PartType, "part_type")
order_status = _pg_enum(OrderStatus, "order_status")
transaction_type = _pg_enum(TransactionType, "transaction_type")
machine_status = _pg_enum(MachineStatus, "machine_status")
maintenance_type = _pg_enum(MaintenanceType, "maintenance_type")
protocol_type = _pg_enum(ProtocolType, "protocol_type")
execution_status = _pg_enum(ExecutionStatus, "execution_status")
adjustment_reason = _pg_enum(AdjustmentReason, "adjustment_reason")
stocktake_status = _pg_enum(StocktakeStatus, "stocktake_status")
alert_severity = _pg_enum(AlertSeverity, "alert_severity")
ai_session_status = _pg_enum(AiSessionStatus, "ai_session_status")
ai_message_role = _pg_enum(AiMessageRole, "ai_message_role")
part_order_status = _pg_enum(PartOrderStatus, "part_order_status")


# --------------------------------------------------------------------------- helpers
def uuid_pk() -> Mapped[uuid.UUID]:
    """A uuid primary key generated by PostgreSQL (gen_random_uuid(), built in since 13)."""
    return mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))


def created_at_column() -> Mapped[datetime]:
    """A ``created_at`` timestamptz column defaulting to now()."""
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def fk(target: str, ondelete: str, **kwargs: Any) -> ForeignKey:
    """A foreign key with its ON DELETE action spelled out (every FK of the app has one)."""
    return ForeignKey(target, ondelete=ondelete, **kwargs)


class Timestamps:
    """``created_at`` / ``updated_at`` columns (timestamptz, default now())."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


MONEY = Numeric(12, 2)
QTY = Numeric(12, 2)
HOURS = Numeric(10, 2)


# =========================================================================== core
class Organization(Timestamps, Base):
    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint(
            "country IS NULL OR country ~ '^[A-Z]{2}$'", name="ck_organizations_country_code"
        ),
        {"comment": "Customers, suppliers and the two operating companies (Oraseas EE, BossAqua)."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(255), unique=True)
    organization_type: Mapped[OrganizationType] = mapped_column(organization_type)
    parent_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("organizations.id", "SET NULL"), index=True
    )
    address: Mapped[str | None] = mapped_column(Text)
    contact_info: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2), comment="ISO 3166-1 alpha-2 code")
    logo_url: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    parent: Mapped[Organization | None] = relationship(remote_side=lambda: [Organization.id])
    users: Mapped[list[User]] = relationship(back_populates="organization")
    warehouses: Mapped[list[Warehouse]] = relationship(back_populates="organization")


class User(Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        Index(
            "ix_users_invitation_token",
            "invitation_token",
            postgresql_where=text("invitation_token IS NOT NULL"),
        ),
        CheckConstraint(
            "failed_login_attempts >= 0", name="ck_users_failed_login_attempts_nonnegative"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[UserRole] = mapped_column(
        user_role,
        comment="user: customer staff; admin: organization admin; super_admin: Oraseas EE staff",
    )
    user_status: Mapped[UserStatus] = mapped_column(
        user_status, server_default=text("'active'::user_status")
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        fk("organizations.id", "CASCADE"), index=True
    )
    failed_login_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    invitation_token: Mapped[str | None] = mapped_column(String(255))
    invitation_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_verification_token: Mapped[str | None] = mapped_column(String(255))
    email_verification_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    default_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(
        fk(
            "warehouses.id",
            "SET NULL",
            use_alter=True,
            name="users_default_warehouse_id_fkey",
        )
    )
    preferred_language: Mapped[str] = mapped_column(String(5), server_default=text("'en'"))

    organization: Mapped[Organization] = relationship(back_populates="users")
    default_warehouse: Mapped[Warehouse | None] = relationship(
        foreign_keys=[default_warehouse_id], post_update=True
    )


class Warehouse(Timestamps, Base):
    __tablename__ = "warehouses"
    __table_args__ = (
        UniqueConstraint("organization_id", "name", name="uq_warehouses_organization_id_name"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    manager_user_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("users.id", "SET NULL"), index=True
    )
    capacity_m3: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    organization: Mapped[Organization] = relationship(back_populates="warehouses")
    manager: Mapped[User | None] = relationship(foreign_keys=[manager_user_id])
    inventory_items: Mapped[list[Inventory]] = relationship(back_populates="warehouse")


class SystemSetting(Timestamps, Base):
    __tablename__ = "system_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    description: Mapped[str | None] = mapped_column(Text)
    is_secret: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))


# =========================================================================== parts
class PartCategory(Timestamps, Base):
    __tablename__ = "part_categories"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    parent_category_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("part_categories.id", "SET NULL")
    )
    description: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Part(Timestamps, Base):
    __tablename__ = "parts"
    __table_args__ = (
        Index("ix_parts_name_lower", func.lower(text("name"))),
        CheckConstraint(
            "minimum_order_quantity > 0", name="ck_parts_minimum_order_quantity_positive"
        ),
        {"comment": "Catalogue of consumables and bulk materials used by AutoBoss machines."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    part_number: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    part_type: Mapped[PartType] = mapped_column(
        part_type, server_default=text("'consumable'::part_type")
    )
    is_proprietary: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    unit_of_measure: Mapped[str] = mapped_column(String(50), server_default=text("'pieces'"))
    manufacturer: Mapped[str | None] = mapped_column(String(255))
    manufacturer_part_number: Mapped[str | None] = mapped_column(String(255))
    manufacturer_delivery_time_days: Mapped[int | None] = mapped_column(Integer)
    local_supplier_delivery_time_days: Mapped[int | None] = mapped_column(Integer)
    image_urls: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("part_categories.id", "SET NULL"), index=True
    )
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("parts.id", "SET NULL", deferrable=True, initially="DEFERRED"),
        comment="Newer part that replaces this one (self-reference)",
    )
    minimum_order_quantity: Mapped[Decimal] = mapped_column(QTY, server_default=text("1"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    superseded_by: Mapped[Part | None] = relationship(remote_side=lambda: [Part.id])


class PartImage(Base):
    __tablename__ = "part_images"
    __table_args__ = (
        Index(
            "uq_part_images_primary_per_part",
            "part_id",
            unique=True,
            postgresql_where=text("is_primary"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    caption: Mapped[str | None] = mapped_column(String(255))
    sort_order: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    is_primary: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = created_at_column()


class PartSupplier(Timestamps, Base):
    __tablename__ = "part_suppliers"
    __table_args__ = (
        UniqueConstraint(
            "part_id", "supplier_organization_id", name="uq_part_suppliers_part_id_supplier"
        ),
        CheckConstraint(
            "lead_time_days IS NULL OR lead_time_days >= 0",
            name="ck_part_suppliers_lead_time_nonnegative",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"))
    supplier_organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "CASCADE"))
    supplier_part_number: Mapped[str | None] = mapped_column(String(255))
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    unit_cost: Mapped[Decimal | None] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3), server_default=text("'EUR'"))
    is_preferred: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class PartPricing(Timestamps, Base):
    __tablename__ = "part_pricing"
    __table_args__ = (
        CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name="ck_part_pricing_valid_range"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"), index=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(fk("organizations.id", "CASCADE"))
    price: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3), server_default=text("'EUR'"))
    valid_from: Mapped[date] = mapped_column(Date, server_default=text("CURRENT_DATE"))
    valid_to: Mapped[date | None] = mapped_column(Date)


# =========================================================================== inventory
class Inventory(Base):
    __tablename__ = "inventory"
    __table_args__ = (
        UniqueConstraint("warehouse_id", "part_id", name="uq_inventory_warehouse_id_part_id"),
        Index(
            "ix_inventory_below_minimum",
            "warehouse_id",
            postgresql_where=text("current_stock < minimum_stock_recommendation"),
        ),
        CheckConstraint("current_stock >= 0", name="ck_inventory_current_stock_nonnegative"),
        {"comment": "Stock of each part in each warehouse."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    warehouse_id: Mapped[uuid.UUID] = mapped_column(fk("warehouses.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"), index=True)
    current_stock: Mapped[Decimal] = mapped_column(QTY, server_default=text("0"))
    minimum_stock_recommendation: Mapped[Decimal] = mapped_column(QTY, server_default=text("0"))
    reorder_threshold_set_by: Mapped[str | None] = mapped_column(String(50))
    unit_of_measure: Mapped[str] = mapped_column(String(50), server_default=text("'pieces'"))
    bin_location: Mapped[str | None] = mapped_column(String(50))
    last_recount_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_updated: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    created_at: Mapped[datetime] = created_at_column()

    warehouse: Mapped[Warehouse] = relationship(back_populates="inventory_items")
    part: Mapped[Part] = relationship()


class InventoryReservation(Base):
    __tablename__ = "inventory_reservations"

    id: Mapped[uuid.UUID] = uuid_pk()
    inventory_id: Mapped[uuid.UUID] = mapped_column(fk("inventory.id", "CASCADE"), index=True)
    customer_order_id: Mapped[uuid.UUID | None] = mapped_column(fk("customer_orders.id", "CASCADE"))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    reserved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_transaction_date_desc", text("transaction_date DESC")),
        Index("ix_transactions_part_id_transaction_date", "part_id", "transaction_date"),
        CheckConstraint("quantity > 0", name="ck_transactions_quantity_positive"),
        {"comment": "Audit trail of every parts movement."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    sequence_no: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    transaction_type: Mapped[TransactionType] = mapped_column(transaction_type)
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    from_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(fk("warehouses.id", "SET NULL"))
    to_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(fk("warehouses.id", "SET NULL"))
    machine_id: Mapped[uuid.UUID | None] = mapped_column(fk("machines.id", "SET NULL"))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    unit_of_measure: Mapped[str] = mapped_column(String(50))
    performed_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    transaction_date: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    notes: Mapped[str | None] = mapped_column(Text)
    reference_number: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()


class TransactionApproval(Base):
    __tablename__ = "transaction_approvals"
    __table_args__ = (
        UniqueConstraint(
            "transaction_id",
            "approver_user_id",
            name="uq_transaction_approvals_transaction_id_approver",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    transaction_id: Mapped[uuid.UUID] = mapped_column(fk("transactions.id", "CASCADE"))
    approver_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))
    comments: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class StockAdjustment(Timestamps, Base):
    __tablename__ = "stock_adjustments"

    id: Mapped[uuid.UUID] = uuid_pk()
    warehouse_id: Mapped[uuid.UUID] = mapped_column(fk("warehouses.id", "CASCADE"), index=True)
    adjustment_date: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    reason: Mapped[AdjustmentReason] = mapped_column(adjustment_reason)
    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    stocktake_id: Mapped[uuid.UUID | None] = mapped_column(fk("stocktakes.id", "SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)
    total_items_adjusted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    approved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StockAdjustmentItem(Base):
    __tablename__ = "stock_adjustment_items"
    __table_args__ = (
        UniqueConstraint(
            "stock_adjustment_id", "part_id", name="uq_stock_adjustment_items_adjustment_part"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    stock_adjustment_id: Mapped[uuid.UUID] = mapped_column(fk("stock_adjustments.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    quantity_before: Mapped[Decimal] = mapped_column(QTY)
    quantity_after: Mapped[Decimal] = mapped_column(QTY)
    quantity_change: Mapped[Decimal] = mapped_column(QTY)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class Stocktake(Timestamps, Base):
    __tablename__ = "stocktakes"

    id: Mapped[uuid.UUID] = uuid_pk()
    warehouse_id: Mapped[uuid.UUID] = mapped_column(fk("warehouses.id", "CASCADE"), index=True)
    scheduled_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[StocktakeStatus] = mapped_column(
        stocktake_status, server_default=text("'planned'::stocktake_status")
    )
    scheduled_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    completed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    completed_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str | None] = mapped_column(Text)
    discrepancy_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    discrepancy_value: Mapped[Decimal | None] = mapped_column(MONEY)


class StocktakeItem(Base):
    __tablename__ = "stocktake_items"
    __table_args__ = (
        UniqueConstraint("stocktake_id", "part_id", name="uq_stocktake_items_stocktake_id_part_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    stocktake_id: Mapped[uuid.UUID] = mapped_column(fk("stocktakes.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    expected_quantity: Mapped[Decimal] = mapped_column(QTY)
    actual_quantity: Mapped[Decimal | None] = mapped_column(QTY)
    discrepancy: Mapped[Decimal | None] = mapped_column(QTY)
    counted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    counted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class InventoryAlert(Timestamps, Base):
    __tablename__ = "inventory_alerts"
    __table_args__ = (
        Index(
            "ix_inventory_alerts_active",
            "warehouse_id",
            "part_id",
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    warehouse_id: Mapped[uuid.UUID] = mapped_column(fk("warehouses.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"))
    alert_type: Mapped[str] = mapped_column(String(50))
    severity: Mapped[AlertSeverity] = mapped_column(
        alert_severity, server_default=text("'medium'::alert_severity")
    )
    threshold_value: Mapped[Decimal | None] = mapped_column(QTY)
    current_value: Mapped[Decimal | None] = mapped_column(QTY)
    message: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))


class StockTransfer(Timestamps, Base):
    __tablename__ = "stock_transfers"
    __table_args__ = (
        CheckConstraint(
            "from_warehouse_id <> to_warehouse_id", name="ck_stock_transfers_distinct_warehouses"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    transfer_number: Mapped[str] = mapped_column(String(50), unique=True)
    from_warehouse_id: Mapped[uuid.UUID] = mapped_column(fk("warehouses.id", "RESTRICT"))
    to_warehouse_id: Mapped[uuid.UUID] = mapped_column(fk("warehouses.id", "RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'draft'"))
    requested_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)


class StockTransferItem(Base):
    __tablename__ = "stock_transfer_items"

    id: Mapped[uuid.UUID] = uuid_pk()
    transfer_id: Mapped[uuid.UUID] = mapped_column(fk("stock_transfers.id", "CASCADE"), index=True)
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    received_quantity: Mapped[Decimal | None] = mapped_column(QTY)
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(fk("transactions.id", "SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


# =========================================================================== orders
class CustomerOrder(Timestamps, Base):
    __tablename__ = "customer_orders"
    __table_args__ = (
        Index(
            "ix_customer_orders_customer_organization_id_order_date",
            "customer_organization_id",
            "order_date",
        ),
        CheckConstraint(
            "total_amount IS NULL OR total_amount >= 0",
            name="ck_customer_orders_total_amount_nonnegative",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    order_number: Mapped[int] = mapped_column(
        Integer,
        Sequence("customer_order_number_seq", start=1000),
        unique=True,
        server_default=text("nextval('customer_order_number_seq'::regclass)"),
        comment="Human-facing order number, from customer_order_number_seq",
    )
    customer_organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "RESTRICT"))
    oraseas_organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "RESTRICT"))
    order_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expected_delivery_date: Mapped[date | None] = mapped_column(Date)
    actual_delivery_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[OrderStatus] = mapped_column(
        order_status, server_default=text("'pending'::order_status")
    )
    ordered_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    shipped_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    total_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    notes: Mapped[str | None] = mapped_column(Text)

    items: Mapped[list[CustomerOrderItem]] = relationship(back_populates="order")


class CustomerOrderItem(Timestamps, Base):
    __tablename__ = "customer_order_items"
    __table_args__ = (
        UniqueConstraint(
            "customer_order_id", "line_number", name="uq_customer_order_items_order_line"
        ),
        CheckConstraint("quantity > 0", name="ck_customer_order_items_quantity_positive"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_order_id: Mapped[uuid.UUID] = mapped_column(fk("customer_orders.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    line_number: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal] = mapped_column(QTY)
    unit_price: Mapped[Decimal | None] = mapped_column(MONEY)
    notes: Mapped[str | None] = mapped_column(Text)

    order: Mapped[CustomerOrder] = relationship(back_populates="items")


class SupplierOrder(Timestamps, Base):
    __tablename__ = "supplier_orders"

    id: Mapped[uuid.UUID] = uuid_pk()
    ordering_organization_id: Mapped[uuid.UUID] = mapped_column(
        fk("organizations.id", "CASCADE"), index=True
    )
    supplier_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("organizations.id", "SET NULL")
    )
    supplier_name: Mapped[str] = mapped_column(String(255))
    order_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expected_delivery_date: Mapped[date | None] = mapped_column(Date)
    actual_delivery_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[OrderStatus] = mapped_column(
        order_status, server_default=text("'pending'::order_status")
    )
    currency: Mapped[str] = mapped_column(String(3), server_default=text("'EUR'"))
    total_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    notes: Mapped[str | None] = mapped_column(Text)


class SupplierOrderItem(Timestamps, Base):
    __tablename__ = "supplier_order_items"
    __table_args__ = (
        UniqueConstraint(
            "supplier_order_id", "line_number", name="uq_supplier_order_items_order_line"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    supplier_order_id: Mapped[uuid.UUID] = mapped_column(fk("supplier_orders.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    line_number: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[Decimal] = mapped_column(QTY)
    unit_price: Mapped[Decimal | None] = mapped_column(MONEY)
    received_quantity: Mapped[Decimal] = mapped_column(QTY, server_default=text("0"))


class OrderShipment(Base):
    __tablename__ = "order_shipments"

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_order_id: Mapped[uuid.UUID] = mapped_column(
        fk("customer_orders.id", "CASCADE"), index=True
    )
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    shipped_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    package_count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class OrderAttachment(Base):
    __tablename__ = "order_attachments"
    __table_args__ = (
        CheckConstraint(
            "num_nonnulls(customer_order_id, supplier_order_id) = 1",
            name="ck_order_attachments_exactly_one_order",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_order_id: Mapped[uuid.UUID | None] = mapped_column(fk("customer_orders.id", "CASCADE"))
    supplier_order_id: Mapped[uuid.UUID | None] = mapped_column(fk("supplier_orders.id", "CASCADE"))
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    storage_path: Mapped[str] = mapped_column(String(1000))
    uploaded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    created_at: Mapped[datetime] = created_at_column()


class PartOrderRequest(Timestamps, Base):
    __tablename__ = "part_order_requests"
    __table_args__ = (
        CheckConstraint(
            "priority IN ('low', 'normal', 'high', 'urgent')",
            name="ck_part_order_requests_priority",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    request_number: Mapped[str] = mapped_column(String(50), unique=True)
    customer_organization_id: Mapped[uuid.UUID] = mapped_column(
        fk("organizations.id", "CASCADE"), index=True
    )
    supplier_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("organizations.id", "SET NULL")
    )
    status: Mapped[PartOrderStatus] = mapped_column(
        part_order_status, server_default=text("'requested'::part_order_status")
    )
    priority: Mapped[str] = mapped_column(String(20), server_default=text("'normal'"))
    requested_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    approved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    requested_date: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expected_delivery_date: Mapped[date | None] = mapped_column(Date)
    actual_delivery_date: Mapped[date | None] = mapped_column(Date)
    receiving_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("warehouses.id", "SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)


class PartOrderItem(Timestamps, Base):
    __tablename__ = "part_order_items"
    __table_args__ = (
        UniqueConstraint(
            "order_request_id", "part_id", name="uq_part_order_items_order_request_id_part_id"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    order_request_id: Mapped[uuid.UUID] = mapped_column(fk("part_order_requests.id", "CASCADE"))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    unit_price: Mapped[Decimal | None] = mapped_column(MONEY)
    received_quantity: Mapped[Decimal] = mapped_column(QTY, server_default=text("0"))
    destination_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("warehouses.id", "SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)


class PartOrderStatusHistory(Base):
    __tablename__ = "part_order_status_history"

    id: Mapped[uuid.UUID] = uuid_pk()
    order_request_id: Mapped[uuid.UUID] = mapped_column(
        fk("part_order_requests.id", "CASCADE"), index=True
    )
    from_status: Mapped[PartOrderStatus | None] = mapped_column(part_order_status)
    to_status: Mapped[PartOrderStatus] = mapped_column(part_order_status)
    changed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# =========================================================================== machines
class Machine(Timestamps, Base):
    __tablename__ = "machines"
    __table_args__ = (
        CheckConstraint("btrim(serial_number) <> ''", name="ck_machines_serial_number_not_blank"),
        {"comment": "AutoBoss machines owned by customer organizations."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    customer_organization_id: Mapped[uuid.UUID] = mapped_column(
        fk("organizations.id", "CASCADE"), index=True
    )
    model_type: Mapped[str] = mapped_column(String(100), comment="e.g. V3.1B, V4.0")
    name: Mapped[str] = mapped_column(String(255))
    serial_number: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[MachineStatus] = mapped_column(
        machine_status, server_default=text("'active'::machine_status")
    )
    purchase_date: Mapped[date | None] = mapped_column(Date)
    warranty_expiry_date: Mapped[date | None] = mapped_column(Date)
    installation_location: Mapped[str | None] = mapped_column(String(255))
    last_maintenance_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_maintenance_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class MachineHours(Timestamps, Base):
    __tablename__ = "machine_hours"
    __table_args__ = (
        Index(
            "ix_machine_hours_machine_id_recorded_date",
            "machine_id",
            text("recorded_date DESC"),
        ),
        CheckConstraint("hours_value >= 0", name="ck_machine_hours_hours_value_nonnegative"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_id: Mapped[uuid.UUID] = mapped_column(fk("machines.id", "CASCADE"))
    recorded_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    hours_value: Mapped[Decimal] = mapped_column(HOURS)
    recorded_date: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    reading_source: Mapped[str] = mapped_column(String(20), server_default=text("'manual'"))
    notes: Mapped[str | None] = mapped_column(Text)
    is_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class MachineMaintenance(Timestamps, Base):
    __tablename__ = "machine_maintenance"

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_id: Mapped[uuid.UUID] = mapped_column(fk("machines.id", "CASCADE"), index=True)
    maintenance_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    maintenance_type: Mapped[MaintenanceType] = mapped_column(maintenance_type)
    performed_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    description: Mapped[str] = mapped_column(Text)
    hours_spent: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    cost: Mapped[Decimal | None] = mapped_column(MONEY)
    next_maintenance_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    machine_hours_at_service: Mapped[Decimal | None] = mapped_column(HOURS)
    notes: Mapped[str | None] = mapped_column(Text)


class MaintenancePartUsage(Base):
    __tablename__ = "maintenance_part_usage"

    id: Mapped[uuid.UUID] = uuid_pk()
    maintenance_id: Mapped[uuid.UUID] = mapped_column(
        fk("machine_maintenance.id", "CASCADE"), index=True
    )
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "RESTRICT"))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    warehouse_id: Mapped[uuid.UUID | None] = mapped_column(fk("warehouses.id", "SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class MachinePartCompatibility(Base):
    __tablename__ = "machine_part_compatibility"
    __table_args__ = (
        UniqueConstraint(
            "machine_model_type", "part_id", name="uq_machine_part_compatibility_model_part"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_model_type: Mapped[str] = mapped_column(String(100))
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"))
    is_recommended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class MachineSale(Base):
    __tablename__ = "machine_sales"

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_id: Mapped[uuid.UUID] = mapped_column(fk("machines.id", "CASCADE"), index=True)
    from_organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "RESTRICT"))
    to_organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "RESTRICT"))
    sale_date: Mapped[date] = mapped_column(Date)
    sale_price: Mapped[Decimal | None] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3), server_default=text("'EUR'"))
    performed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class MachineDocument(Base):
    __tablename__ = "machine_documents"

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_id: Mapped[uuid.UUID] = mapped_column(fk("machines.id", "CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(255))
    document_url: Mapped[str] = mapped_column(String(1000))
    document_type: Mapped[str | None] = mapped_column(String(50))
    uploaded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    created_at: Mapped[datetime] = created_at_column()


# =========================================================================== maintenance
class MaintenanceProtocol(Timestamps, Base):
    __tablename__ = "maintenance_protocols"
    __table_args__ = (
        UniqueConstraint(
            "name", "machine_model", name="uq_maintenance_protocols_name_machine_model"
        ),
        CheckConstraint(
            "service_interval_hours IS NULL OR service_interval_hours > 0",
            name="ck_maintenance_protocols_interval_positive",
        ),
        {"comment": "Maintenance protocols (daily, weekly, service intervals) per machine model."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    protocol_type: Mapped[ProtocolType] = mapped_column(protocol_type)
    service_interval_hours: Mapped[Decimal | None] = mapped_column(HOURS)
    is_recurring: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    machine_model: Mapped[str | None] = mapped_column(
        String(100), comment="NULL means the protocol applies to every model"
    )
    description: Mapped[str | None] = mapped_column(Text)
    display_order: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))


class ProtocolChecklistItem(Timestamps, Base):
    __tablename__ = "protocol_checklist_items"
    __table_args__ = (
        UniqueConstraint(
            "protocol_id", "item_order", name="uq_protocol_checklist_items_protocol_order"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    protocol_id: Mapped[uuid.UUID] = mapped_column(fk("maintenance_protocols.id", "CASCADE"))
    item_order: Mapped[int] = mapped_column(Integer)
    item_description: Mapped[str] = mapped_column(Text)
    item_type: Mapped[str] = mapped_column(String(50), server_default=text("'check'"))
    item_category: Mapped[str | None] = mapped_column(String(100))
    part_id: Mapped[uuid.UUID | None] = mapped_column(fk("parts.id", "SET NULL"))
    estimated_quantity: Mapped[Decimal | None] = mapped_column(QTY)
    is_critical: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    estimated_duration_minutes: Mapped[int | None] = mapped_column(Integer)


class MaintenanceExecution(Timestamps, Base):
    __tablename__ = "maintenance_executions"

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_id: Mapped[uuid.UUID] = mapped_column(fk("machines.id", "CASCADE"), index=True)
    protocol_id: Mapped[uuid.UUID | None] = mapped_column(
        fk("maintenance_protocols.id", "SET NULL")
    )
    performed_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    performed_date: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    machine_hours_at_service: Mapped[Decimal | None] = mapped_column(HOURS)
    next_service_due_hours: Mapped[Decimal | None] = mapped_column(HOURS)
    status: Mapped[ExecutionStatus] = mapped_column(
        execution_status, server_default=text("'in_progress'::execution_status")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str | None] = mapped_column(Text)


class MaintenanceChecklistCompletion(Base):
    __tablename__ = "maintenance_checklist_completions"
    __table_args__ = (
        UniqueConstraint(
            "execution_id",
            "checklist_item_id",
            name="uq_maintenance_checklist_completions_execution_item",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    execution_id: Mapped[uuid.UUID] = mapped_column(fk("maintenance_executions.id", "CASCADE"))
    checklist_item_id: Mapped[uuid.UUID] = mapped_column(
        fk("protocol_checklist_items.id", "CASCADE")
    )
    status: Mapped[ExecutionStatus] = mapped_column(
        execution_status, server_default=text("'completed'::execution_status")
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actual_quantity_used: Mapped[Decimal | None] = mapped_column(QTY)
    notes: Mapped[str | None] = mapped_column(Text)
    photo_urls: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = created_at_column()


class MaintenanceReminder(Timestamps, Base):
    __tablename__ = "maintenance_reminders"
    __table_args__ = (
        Index(
            "ix_maintenance_reminders_open",
            "machine_id",
            postgresql_where=text("acknowledged_at IS NULL"),
        ),
        CheckConstraint(
            "due_hours IS NOT NULL OR due_date IS NOT NULL",
            name="ck_maintenance_reminders_due_given",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    machine_id: Mapped[uuid.UUID] = mapped_column(fk("machines.id", "CASCADE"))
    protocol_id: Mapped[uuid.UUID | None] = mapped_column(fk("maintenance_protocols.id", "CASCADE"))
    maintenance_type: Mapped[MaintenanceType] = mapped_column(maintenance_type)
    due_hours: Mapped[Decimal | None] = mapped_column(HOURS)
    due_date: Mapped[date | None] = mapped_column(Date)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'pending'"))


# =========================================================================== translations
class SupportedLanguage(Base):
    __tablename__ = "supported_languages"

    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    native_name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    sort_order: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_at_column()


class PartTranslation(Timestamps, Base):
    __tablename__ = "part_translations"
    __table_args__ = (
        UniqueConstraint(
            "part_id", "language_code", name="uq_part_translations_part_id_language_code"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    part_id: Mapped[uuid.UUID] = mapped_column(fk("parts.id", "CASCADE"))
    language_code: Mapped[str] = mapped_column(
        ForeignKey("supported_languages.code", onupdate="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    search_keywords: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))


class MaintenanceProtocolTranslation(Timestamps, Base):
    __tablename__ = "maintenance_protocol_translations"
    __table_args__ = (
        UniqueConstraint(
            "protocol_id",
            "language_code",
            name="uq_maintenance_protocol_translations_protocol_language",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    protocol_id: Mapped[uuid.UUID] = mapped_column(fk("maintenance_protocols.id", "CASCADE"))
    language_code: Mapped[str] = mapped_column(
        ForeignKey("supported_languages.code", onupdate="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class ChecklistItemTranslation(Timestamps, Base):
    __tablename__ = "checklist_item_translations"
    __table_args__ = (
        UniqueConstraint(
            "checklist_item_id",
            "language_code",
            name="uq_checklist_item_translations_item_language",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    checklist_item_id: Mapped[uuid.UUID] = mapped_column(
        fk("protocol_checklist_items.id", "CASCADE")
    )
    language_code: Mapped[str] = mapped_column(
        ForeignKey("supported_languages.code", onupdate="CASCADE")
    )
    item_description: Mapped[str] = mapped_column(Text)
    item_category: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)


class UiTranslation(Base):
    __tablename__ = "ui_translations"
    __table_args__ = (
        UniqueConstraint(
            "language_code", "translation_key", name="uq_ui_translations_language_key"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    language_code: Mapped[str] = mapped_column(
        ForeignKey("supported_languages.code", onupdate="CASCADE")
    )
    translation_key: Mapped[str] = mapped_column(String(255))
    translated_text: Mapped[str] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# =========================================================================== AI assistant
class AiSession(Timestamps, Base):
    __tablename__ = "ai_sessions"
    __table_args__ = (
        Index(
            "ix_ai_sessions_active_user",
            "user_id",
            postgresql_where=text("status = 'active'::ai_session_status"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "CASCADE"))
    machine_id: Mapped[uuid.UUID | None] = mapped_column(fk("machines.id", "SET NULL"))
    status: Mapped[AiSessionStatus] = mapped_column(
        ai_session_status, server_default=text("'active'::ai_session_status")
    )
    language: Mapped[str] = mapped_column(String(5), server_default=text("'en'"))
    problem_description: Mapped[str | None] = mapped_column(Text)
    session_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AiMessage(Base):
    __tablename__ = "ai_messages"
    __table_args__ = (Index("ix_ai_messages_session_id_created_at", "session_id", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(fk("ai_sessions.id", "CASCADE"))
    role: Mapped[AiMessageRole] = mapped_column(ai_message_role)
    content: Mapped[str] = mapped_column(Text)
    message_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    token_count: Mapped[int | None] = mapped_column(Integer)
    model_name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()


class AiMessageFeedback(Base):
    __tablename__ = "ai_message_feedback"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", name="uq_ai_message_feedback_message_user"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="ck_ai_message_feedback_rating_range"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    message_id: Mapped[uuid.UUID] = mapped_column(fk("ai_messages.id", "CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class ExpertEscalation(Timestamps, Base):
    __tablename__ = "expert_escalations"

    id: Mapped[uuid.UUID] = uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(fk("ai_sessions.id", "CASCADE"), index=True)
    escalated_by_user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "RESTRICT"))
    assigned_expert_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    priority: Mapped[AlertSeverity] = mapped_column(
        alert_severity, server_default=text("'medium'::alert_severity")
    )
    status: Mapped[str] = mapped_column(String(20), server_default=text("'open'"))
    reason: Mapped[str] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KnowledgeDocument(Timestamps, Base):
    __tablename__ = "knowledge_documents"
    __table_args__ = (
        {"comment": "AI knowledge base documents (migrations managed by the AI service)."},
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(String(500))
    document_type: Mapped[str] = mapped_column(String(50))
    language: Mapped[str] = mapped_column(String(5), server_default=text("'en'"))
    machine_models: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]")
    )
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    source_file_path: Mapped[str | None] = mapped_column(String(1000))
    file_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    document_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    uploaded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))


class DocumentChunk(Base):
    __tablename__ = "document_chunks"
    __table_args__ = (
        UniqueConstraint("document_id", "chunk_index", name="uq_document_chunks_document_chunk"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    document_id: Mapped[uuid.UUID] = mapped_column(fk("knowledge_documents.id", "CASCADE"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    embedding: Mapped[list[float] | None] = mapped_column(
        ARRAY(DOUBLE_PRECISION), comment="Embedding vector (float8[]; no pgvector needed)"
    )
    token_count: Mapped[int | None] = mapped_column(Integer)
    chunk_metadata: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()


# =========================================================================== security
class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_created_at_desc", text("created_at DESC")),
        Index("ix_audit_logs_resource_type_resource_id", "resource_type", "resource_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(fk("organizations.id", "SET NULL"))
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(100))
    resource_id: Mapped[str | None] = mapped_column(String(255))
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class SecurityEvent(Base):
    __tablename__ = "security_events"
    __table_args__ = (
        Index(
            "ix_security_events_event_day",
            text("((created_at AT TIME ZONE 'UTC')::date)"),
        ),
        {"comment": "Logins, lockouts and other security-relevant events."},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100), index=True)
    severity: Mapped[AlertSeverity] = mapped_column(
        alert_severity, server_default=text("'low'::alert_severity")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    username_attempted: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    session_id: Mapped[str | None] = mapped_column(String(255))
    resolved: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = created_at_column()


class UserSession(Base):
    __tablename__ = "user_sessions"
    __table_args__ = (
        Index("ix_user_sessions_active", "user_id", postgresql_where=text("is_active")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    session_token: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "CASCADE"))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    last_activity: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    terminated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class PasswordResetToken(Base):
    __tablename__ = "password_reset_tokens"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(255), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requested_ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = created_at_column()


class InvitationAuditLog(Base):
    __tablename__ = "invitation_audit_logs"

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(50))
    performed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    details: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmailOutbox(Base):
    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_queued", "created_at", postgresql_where=text("status = 'queued'")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    to_address: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), server_default=text("'queued'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


# =========================================================================== notifications
class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_unread", "user_id", postgresql_where=text("NOT is_read")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "CASCADE"))
    notification_type: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    severity: Mapped[AlertSeverity] = mapped_column(
        alert_severity, server_default=text("'low'::alert_severity")
    )
    is_read: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class UserPreference(Base):
    __tablename__ = "user_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(fk("users.id", "CASCADE"), primary_key=True)
    theme: Mapped[str] = mapped_column(String(20), server_default=text("'light'"))
    timezone: Mapped[str] = mapped_column(String(64), server_default=text("'UTC'"))
    date_format: Mapped[str] = mapped_column(String(20), server_default=text("'YYYY-MM-DD'"))
    dashboard_layout: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    email_notifications: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrganizationConfiguration(Timestamps, Base):
    __tablename__ = "organization_configurations"
    __table_args__ = (
        UniqueConstraint(
            "organization_id",
            "configuration_key",
            name="uq_organization_configurations_org_key",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(fk("organizations.id", "CASCADE"))
    configuration_key: Mapped[str] = mapped_column(String(100))
    value_json: Mapped[Any] = mapped_column(JSONB)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))


class DataExportJob(Base):
    __tablename__ = "data_export_jobs"

    id: Mapped[uuid.UUID] = uuid_pk()
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(fk("users.id", "SET NULL"))
    export_type: Mapped[str] = mapped_column(String(50))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(20), server_default=text("'queued'"))
    file_path: Mapped[str | None] = mapped_column(String(1000))
    row_count: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
