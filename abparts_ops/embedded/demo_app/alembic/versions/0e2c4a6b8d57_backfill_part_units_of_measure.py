"""backfill parts.unit_of_measure and make it NOT NULL

Hand-written data fix: parts imported from the old spreadsheet have no unit of measure,
which broke the inventory screens. Blank and missing units become 'pieces' (the app's
default) and the column becomes NOT NULL.

Revision ID: 0e2c4a6b8d57
Revises: 4f6a8c0e2d39
Create Date: 2025-01-14 16:02:11.385207

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0e2c4a6b8d57"
down_revision: str | Sequence[str] | None = "4f6a8c0e2d39"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE parts SET unit_of_measure = 'pieces' "
        "WHERE unit_of_measure IS NULL OR btrim(unit_of_measure) = ''"
    )
    op.execute(
        "UPDATE inventory SET unit_of_measure = p.unit_of_measure "
        "FROM parts AS p WHERE p.id = inventory.part_id "
        "AND inventory.unit_of_measure IS DISTINCT FROM p.unit_of_measure"
    )
    op.alter_column(
        "parts",
        "unit_of_measure",
        existing_type=sa.String(length=50),
        existing_server_default=sa.text("'pieces'::character varying"),
        nullable=False,
    )


def downgrade() -> None:
    # the backfilled values are kept: they are valid data either way
    op.alter_column(
        "parts",
        "unit_of_measure",
        existing_type=sa.String(length=50),
        existing_server_default=sa.text("'pieces'::character varying"),
        nullable=True,
    )
