"""merge translations and ai assistant heads

Revision ID: 6a0d2f4b8c71
Revises: e3f1d5b7c964, 2b8c4e6a0f13
Create Date: 2024-09-16 17:42:03.118052

"""

from collections.abc import Sequence

revision: str = "6a0d2f4b8c71"
down_revision: str | Sequence[str] | None = ("e3f1d5b7c964", "2b8c4e6a0f13")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
