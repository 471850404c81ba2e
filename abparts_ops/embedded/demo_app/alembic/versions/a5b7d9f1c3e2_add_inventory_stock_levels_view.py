"""add inventory_stock_levels view for the dashboard

Revision ID: a5b7d9f1c3e2
Revises: 7c9e1a3b5d08
Create Date: 2025-04-02 09:30:12.447190

"""

from collections.abc import Sequence

from alembic import op

revision: str = "a5b7d9f1c3e2"
down_revision: str | Sequence[str] | None = "7c9e1a3b5d08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW inventory_stock_levels AS
        SELECT i.id AS inventory_id,
               w.organization_id,
               i.warehouse_id,
               w.name AS warehouse_name,
               i.part_id,
               p.part_number,
               p.name AS part_name,
               i.current_stock,
               i.minimum_stock_recommendation,
               i.current_stock < i.minimum_stock_recommendation AS below_minimum,
               i.last_updated
          FROM inventory AS i
          JOIN warehouses AS w ON w.id = i.warehouse_id
          JOIN parts AS p ON p.id = i.part_id
        """
    )
    op.execute(
        "COMMENT ON VIEW inventory_stock_levels IS "
        "'Stock per part and warehouse, with a below-minimum flag (dashboard).'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW inventory_stock_levels")
