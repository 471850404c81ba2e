"""recreate orderstatus as order_status with 'processing' and 'cancelled'

The first enum was created by a model without an explicit name ("orderstatus") and only
knew pending/shipped/delivered. It is replaced by a properly named type carrying the
labels the order screens use; both order tables are converted in place.

Revision ID: d1f3b5e7a9c6
Revises: 0e2c4a6b8d57
Create Date: 2025-02-20 10:44:36.529803

"""

from collections.abc import Sequence

from alembic import op

revision: str = "d1f3b5e7a9c6"
down_revision: str | Sequence[str] | None = "0e2c4a6b8d57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_TABLES = ("customer_orders", "supplier_orders")


def _convert(new_type: str, using: str) -> None:
    for table in ORDER_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status DROP DEFAULT")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status TYPE {new_type} USING {using}")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN status SET DEFAULT 'pending'::{new_type}")


def upgrade() -> None:
    op.execute(
        "CREATE TYPE order_status AS ENUM "
        "('pending', 'processing', 'shipped', 'delivered', 'cancelled')"
    )
    _convert("order_status", "status::text::order_status")
    op.execute("DROP TYPE orderstatus")


def downgrade() -> None:
    op.execute("CREATE TYPE orderstatus AS ENUM ('pending', 'shipped', 'delivered')")
    _convert(
        "orderstatus",
        "(CASE status::text WHEN 'processing' THEN 'pending' WHEN 'cancelled' THEN 'pending' "
        "ELSE status::text END)::orderstatus",
    )
    op.execute("DROP TYPE order_status")
