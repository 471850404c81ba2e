"""Tiny Alembic projects written into ``tmp_path`` by the tests (never committed).

A project is ``alembic.ini`` + ``migrations/versions/*.py`` + a minimal
``script.py.mako``; its ``env.py`` raises, which proves our code never runs it.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ENV_PY = 'raise RuntimeError("env.py must never be run by abparts_ops")\n'

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""
from alembic import op
import sqlalchemy as sa

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''


@dataclass
class Rev:
    """One revision to write: id, parents, and the body of upgrade()/downgrade()."""

    revision: str
    down: str | tuple[str, ...] | None = None
    upgrade: str = "pass"
    downgrade: str = "pass"
    message: str | None = None
    filename: str | None = None
    extra: str = ""
    depends_on: tuple[str, ...] = field(default_factory=tuple)

    def render(self) -> str:
        """The text of the revision file."""
        down = self.down
        if isinstance(down, tuple) and len(down) == 1:
            down = down[0]
        message = self.message or f"revision {self.revision}"
        return (
            f'"""{message}\n\nRevision ID: {self.revision}\nRevises: {down}\n"""\n'
            "from alembic import op\n"
            "import sqlalchemy as sa\n\n"
            f"revision = {self.revision!r}\n"
            f"down_revision = {down!r}\n"
            "branch_labels = None\n"
            f"depends_on = {self.depends_on or None!r}\n"
            f"{self.extra}\n\n"
            "def upgrade():\n"
            f"{textwrap.indent(textwrap.dedent(self.upgrade).strip() or 'pass', '    ')}\n\n\n"
            "def downgrade():\n"
            f"{textwrap.indent(textwrap.dedent(self.downgrade).strip() or 'pass', '    ')}\n"
        )


def write_rev(versions: Path, rev: Rev) -> Path:
    """Write one revision file into ``versions`` and return its path."""
    path = versions / (rev.filename or f"{rev.revision}_rev.py")
    path.write_text(rev.render(), encoding="utf-8")
    return path


def write_project(root: Path, revs: list[Rev], *, ini: bool = True) -> Path:
    """Write a project under ``root``; returns alembic.ini (or the script folder)."""
    script = root / "migrations"
    versions = script / "versions"
    versions.mkdir(parents=True)
    (script / "env.py").write_text(ENV_PY, encoding="utf-8")
    (script / "script.py.mako").write_text(SCRIPT_MAKO, encoding="utf-8")
    for rev in revs:
        write_rev(versions, rev)
    if not ini:
        return script
    ini_path = root / "alembic.ini"
    ini_path.write_text(
        "[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n",
        encoding="utf-8",
    )
    return ini_path


def table(name: str) -> tuple[str, str]:
    """upgrade/downgrade bodies that create and drop a small table ``name``."""
    return (
        f"op.create_table({name!r}, sa.Column('id', sa.Integer, primary_key=True), "
        "sa.Column('label', sa.Text))",
        f"op.drop_table({name!r})",
    )


def linear(n: int = 3, prefix: str = "r") -> list[Rev]:
    """``n`` revisions in a chain, each creating its own table."""
    revs: list[Rev] = []
    down: str | None = None
    for i in range(1, n + 1):
        rid = f"{prefix}{i:03d}"
        up, dn = table(f"t_{rid}")
        revs.append(Rev(rid, down, up, dn))
        down = rid
    return revs
