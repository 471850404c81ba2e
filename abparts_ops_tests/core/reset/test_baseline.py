"""The baseline revision: rendered from a snapshot, proven by a round trip on real PostgreSQL.

An empty database upgraded to the rendered baseline must snapshot exactly like the source
(the diff is printed on failure), and downgrading to base must leave no table, type,
sequence or view behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config as AlembicConfig
from pytest_alembic import tests as pytest_alembic_tests
from sqlalchemy.engine import Engine

from abparts_ops.core.db import connect, create_database, drop_database, make_engine
from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history import migrate
from abparts_ops.core.history.project import load_project
from abparts_ops.core.reset.baseline_files import (
    BaselinePlan,
    apply_baseline,
    baseline_filename,
    new_revision_id,
    plan_baseline,
    read_baseline_header,
    write_baseline,
)
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.reset.typemap import py_string, render_type
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops_tests.core.schema.test_ddl_dump import EXCLUDE, build_rich, query

CREATED = datetime(2025, 1, 2, 3, 4, 5)
REVISION = "abc123def456"

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
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

ENV_PY = """\
from alembic import context
from sqlalchemy.engine import Connection

connectable = context.config.attributes["connection"]


def run(connection):
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


if isinstance(connectable, Connection):
    run(connectable)
else:
    with connectable.connect() as connection:
        run(connection)
"""


def make_project(root: Path) -> Path:
    """A minimal Alembic project under ``root``; returns its versions folder."""
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/migrations\n", encoding="utf-8"
    )
    (root / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO, encoding="utf-8")
    (root / "migrations" / "env.py").write_text(ENV_PY, encoding="utf-8")
    return root / "migrations" / "versions"


def old_revision(versions: Path, revision: str, down: str | None) -> Path:
    """Write a trivial old revision file (the tangled history a baseline replaces)."""
    path = versions / f"{revision}_old.py"
    path.write_text(
        textwrap.dedent(
            f'''\
            """old {revision}"""
            revision = "{revision}"
            down_revision = {down!r}
            branch_labels = None
            depends_on = None


            def upgrade():
                pass


            def downgrade():
                pass
            '''
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def rich_url(admin_url: str) -> Iterator[str]:
    """A database holding the rich schema (ABParts' excluded tables included)."""
    name = f"base_{uuid.uuid4().hex[:12]}"
    url = create_database(admin_url, name)
    try:
        build_rich(url)
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="module")
def rich_snapshot(rich_url: str) -> Snapshot:
    """The reference snapshot: the rich schema without knowledge_documents/document_chunks."""
    return take_snapshot(rich_url, exclude=EXCLUDE, source="dev")


@pytest.fixture(scope="module")
def source(rich_snapshot: Snapshot) -> str:
    """The rendered baseline of the rich schema."""
    return render_baseline(rich_snapshot, revision=REVISION, created=CREATED)


def leftovers(url: str) -> list[tuple]:
    """Every relation (but the version table) and type left in ``public``."""
    return query(
        url,
        """
        SELECT 'relation', c.relname::text, c.relkind::text FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
        UNION ALL
        SELECT 'type', t.typname::text, t.typtype::text FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
          AND t.typname NOT IN ('alembic_version')
        UNION ALL
        SELECT 'extension', extname::text, '' FROM pg_extension WHERE extname <> 'plpgsql'
        ORDER BY 1, 2
        """,
    )


def test_baseline_round_trip_and_clean_downgrade(
    rich_snapshot: Snapshot, source: str, fresh_db: str, tmp_path: Path
) -> None:
    versions = make_project(tmp_path)
    plan = plan_baseline(rich_snapshot, versions, revision=REVISION, now=CREATED)
    write_baseline(plan)
    project = load_project(tmp_path / "alembic.ini")
    engine = make_engine(fresh_db)
    try:
        with connect(engine) as conn:
            migrate.upgrade(conn, project, "heads")
        rebuilt = take_snapshot(fresh_db, exclude=EXCLUDE, source="scratch")
        diff = diff_snapshots(rich_snapshot, rebuilt, actual_label="upgraded empty db")
        assert diff.is_empty, diff.to_markdown()
        assert query(fresh_db, "SELECT version_num FROM alembic_version") == [(REVISION,)]
        # search_path was set for the migration's transaction only
        assert query(fresh_db, "SHOW search_path") == [('"$user", public',)]
        with connect(engine) as conn:
            migrate.downgrade(conn, project, "base")
    finally:
        engine.dispose()
    assert leftovers(fresh_db) == []
    assert query(fresh_db, "SELECT count(*) FROM alembic_version") == [(0,)]


def test_render_is_deterministic_readable_and_compiles(
    rich_snapshot: Snapshot, source: str, tmp_path: Path
) -> None:
    assert render_baseline(rich_snapshot, revision=REVISION, created=CREATED) == source
    compile(source, "baseline.py", "exec")
    head = source.splitlines()
    assert head[0] == '"""baseline schema'
    assert f"Revision ID: {REVISION}" in head
    assert f"Source fingerprint: {rich_snapshot.fingerprint}" in head
    for line in (
        f'revision = "{REVISION}"',
        "down_revision = None",
        "branch_labels = None",
        "depends_on = None",
        f'source_fingerprint = "{rich_snapshot.fingerprint}"',
        "import sqlalchemy as sa",
        "from alembic import op",
        "from sqlalchemy.dialects import postgresql",
    ):
        assert line in head
    # one call per object, in Alembic's shapes
    assert source.count("op.create_table(") == len(rich_snapshot.kind("table"))
    assert '    op.create_foreign_key("a_b_fk", "A", "B", ["b_id"], ["id"], match="FULL")' in head
    assert 'postgresql.ENUM(name="userstatus", create_type=False)' in source
    assert "sa.Identity(always=True, increment=2, start=10)" in source
    assert 'sa.Computed("lower((email)::text)", persisted=True)' in source
    assert "server_default=sa.text(\"'say \\\\:hello'::text\")" in source
    assert 'op.create_index("ix_users_hash", "users", ["email"], unique=False, ' in source
    assert "CREATE INDEX ix_parts_sku_pattern ON parts USING btree (sku text_pattern_ops)" in source
    assert 'knowledge_documents"' not in source and 'document_chunks"' not in source
    assert source.index("# Enum types") < source.index("# Tables") < source.index("# Views")
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    target = tmp_path / "baseline.py"
    target.write_text(source, encoding="utf-8")
    common = ["--isolated", "--line-length", "100"]
    checked = subprocess.run(
        [ruff, "check", *common, "--select", "E,F,W,I,B,UP", str(target)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = subprocess.run(
        [ruff, "format", *common, "--check", str(target)], capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_plan_write_archive_then_rerun_is_a_noop(rich_snapshot: Snapshot, tmp_path: Path) -> None:
    versions = make_project(tmp_path)
    old = [old_revision(versions, "aaa111", None), old_revision(versions, "bbb222", "aaa111")]
    plan = plan_baseline(rich_snapshot, versions, revision=None, now=CREATED)
    assert plan.existing is None and not plan.is_noop
    assert len(plan.revision) == 12 and int(plan.revision, 16) >= 0
    assert plan.filename == baseline_filename(plan.revision, CREATED)
    assert plan.filename.endswith("_baseline_schema_20250102_030405.py")
    assert plan.files_to_archive == tuple(old)
    assert plan.archive_stamp == "20250102_030405"
    assert not plan.path.exists()  # planning writes nothing

    path, archived = apply_baseline(plan, versions)
    assert path == plan.path and path.read_text(encoding="utf-8") == plan.source
    assert archived is not None and [e.file for e in archived.entries] == [p.name for p in old]
    assert sorted(p.name for p in versions.glob("*.py")) == [plan.filename]
    header = read_baseline_header(path)
    assert header == {
        "revision": plan.revision,
        "down_revision": None,
        "source_fingerprint": rich_snapshot.fingerprint,
    }

    later = datetime(2025, 2, 3, 4, 5, 6)
    again = plan_baseline(rich_snapshot, versions, revision=None, now=later)
    assert again.is_noop and again.existing == path
    assert again.revision == plan.revision and again.sha256 == plan.sha256
    assert again.files_to_archive == ()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert write_baseline(again) == path
    assert apply_baseline(again, versions) == (path, None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_changed_schema_gets_a_new_baseline(rich_snapshot: Snapshot, tmp_path: Path) -> None:
    versions = make_project(tmp_path)
    write_baseline(plan_baseline(rich_snapshot, versions, revision="first0000001", now=CREATED))
    changed = Snapshot(
        schema=rich_snapshot.schema,
        objects={k: v for k, v in rich_snapshot.objects.items() if k != "view"},
        excluded=rich_snapshot.excluded,
    )
    plan = plan_baseline(changed, versions, revision="second000002", now=datetime(2025, 3, 1))
    assert not plan.is_noop
    assert [p.name for p in plan.files_to_archive] == [baseline_filename("first0000001", CREATED)]


def test_never_overwrites(rich_snapshot: Snapshot, tmp_path: Path) -> None:
    versions = make_project(tmp_path)
    target = versions / baseline_filename(REVISION, CREATED)
    target.write_text("# someone else's file\n", encoding="utf-8")
    with pytest.raises(MigrationError, match="never overwritten"):
        plan_baseline(rich_snapshot, versions, revision=REVISION, now=CREATED)
    assert target.read_text(encoding="utf-8") == "# someone else's file\n"

    other = make_project(tmp_path / "other")
    plan = plan_baseline(rich_snapshot, other, revision=REVISION, now=CREATED)
    plan.path.write_text("# appeared after planning\n", encoding="utf-8")
    with pytest.raises(MigrationError, match="never overwritten"):
        write_baseline(plan)
    assert plan.path.read_text(encoding="utf-8") == "# appeared after planning\n"
    assert [p.name for p in other.iterdir()] == [plan.filename]  # no temporary file left

    same = plan_baseline(
        rich_snapshot, make_project(tmp_path / "same"), revision=REVISION, now=CREATED
    )
    assert write_baseline(same) == same.path
    assert write_baseline(same) == same.path  # identical content: nothing to do


def test_archive_failure_leaves_the_folder_as_it_was(
    rich_snapshot: Snapshot, tmp_path: Path
) -> None:
    versions = make_project(tmp_path)
    old = old_revision(versions, "aaa111", None)
    plan = plan_baseline(rich_snapshot, versions, revision=REVISION, now=CREATED)
    (versions.parent / f"versions_archive_{plan.archive_stamp}").mkdir()  # occupied
    with pytest.raises(MigrationError, match="already exists"):
        apply_baseline(plan, versions)
    assert sorted(versions.iterdir()) == [old]


def test_missing_versions_folder(rich_snapshot: Snapshot, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        plan_baseline(rich_snapshot, tmp_path / "nope", revision=None, now=CREATED)


def test_foreign_key_to_an_excluded_table_is_refused(rich_url: str) -> None:
    snapshot = take_snapshot(rich_url, exclude=[*EXCLUDE, "organizations"])
    with pytest.raises(MigrationError) as caught:
        render_baseline(snapshot, revision=REVISION, created=CREATED)
    message = str(caught.value)
    assert "'users_org_fk'" in message and "'users'" in message
    assert "excluded table 'organizations'" in message


def test_docstring_masks_a_url_given_as_source(rich_snapshot: Snapshot) -> None:
    labelled = Snapshot(
        schema=rich_snapshot.schema,
        objects=rich_snapshot.objects,
        source="postgresql://me:Sup3r-Secret@db.example/app",
    )
    text = render_baseline(labelled, revision=REVISION, created=CREATED)
    assert "Sup3r-Secret" not in text
    assert "Source: postgresql://me:***@db.example/app, schema public" in text


def test_bad_revision_id_is_refused(rich_snapshot: Snapshot) -> None:
    with pytest.raises(MigrationError, match="not valid"):
        render_baseline(rich_snapshot, revision='a"; import os', created=CREATED)


def test_new_revision_id_looks_like_alembics() -> None:
    ids = {new_revision_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


def test_plan_is_frozen(rich_snapshot: Snapshot, tmp_path: Path) -> None:
    plan = plan_baseline(rich_snapshot, make_project(tmp_path), revision=REVISION, now=CREATED)
    assert isinstance(plan, BaselinePlan)
    with pytest.raises(AttributeError):
        plan.source = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("type_text", "expected"),
    [
        ("integer", "sa.Integer()"),
        ("character varying(255)", "sa.String(length=255)"),
        ("character(4)", "sa.CHAR(length=4)"),
        ("numeric(12,2)", "sa.Numeric(precision=12, scale=2)"),
        ("timestamp with time zone", "postgresql.TIMESTAMP(timezone=True)"),
        ("timestamp(3) without time zone", "postgresql.TIMESTAMP(precision=3)"),
        ("time(3) with time zone", "postgresql.TIME(timezone=True, precision=3)"),
        ("text[]", "postgresql.ARRAY(sa.Text())"),
        ("userstatus", 'postgresql.ENUM(name="userstatus", create_type=False)'),
        ("userstatus[]", 'postgresql.ARRAY(postgresql.ENUM(name="userstatus", create_type=False))'),
        ("positive_int", '_Raw("positive_int")'),
        ("interval day to second(3)", '_Raw("interval day to second(3)")'),
    ],
)
def test_render_type(type_text: str, expected: str) -> None:
    assert render_type(type_text, enums=["userstatus"]).source == expected


def test_render_type_with_collation() -> None:
    assert render_type("text", collation="C").source == 'sa.Text(collation="C")'
    assert render_type("character varying(9)", collation="C").source == (
        'sa.String(length=9, collation="C")'
    )
    assert render_type("text[]", collation="C").source == """_Raw('text[] COLLATE "C"')"""


def test_py_string_round_trips() -> None:
    for text in ["plain", "it's", 'say "hi"', "both ' and \"", "back\\slash", "a\nb", "é\x00"]:
        assert eval(py_string(text)) == text  # noqa: S307 - a literal we just rendered


# --------------------------------------------------------------------------- pytest-alembic


@pytest.fixture(scope="module")
def baseline_ini(tmp_path_factory: pytest.TempPathFactory, rich_snapshot: Snapshot) -> Path:
    """An Alembic project (with a real env.py) whose only revision is the baseline."""
    root = tmp_path_factory.mktemp("baseline_project")
    versions = make_project(root)
    write_baseline(plan_baseline(rich_snapshot, versions, revision=REVISION, now=CREATED))
    return root / "alembic.ini"


@pytest.fixture
def alembic_config(baseline_ini: Path) -> AlembicConfig:
    """pytest-alembic's configuration: the generated project."""
    return AlembicConfig(str(baseline_ini))


@pytest.fixture
def alembic_engine(fresh_db: str) -> Iterator[Engine]:
    """pytest-alembic's engine: an empty database of this test's own."""
    engine = make_engine(fresh_db)
    yield engine
    engine.dispose()


def test_pytest_alembic_builtin_checks(alembic_runner: Any) -> None:
    """pytest-alembic's own checks pass on the generated project (env.py is run here)."""
    pytest_alembic_tests.test_single_head_revision(alembic_runner)
    pytest_alembic_tests.test_upgrade(alembic_runner)
    pytest_alembic_tests.test_up_down_consistency(alembic_runner)


TYPE_TEXTS = [
    "integer",
    "bigint",
    "smallint",
    "boolean",
    "text",
    "character varying",
    "character varying(7)",
    "character varying(7)[]",
    "character(1)",
    "numeric",
    "numeric(5,0)",
    "numeric(5,-2)",
    "double precision",
    "real",
    "date",
    "timestamp without time zone",
    "timestamp(0) with time zone",
    "time without time zone",
    "time(6) without time zone",
    "interval",
    "interval(2)",
    "interval year to month",
    "uuid",
    "json",
    "jsonb",
    "jsonb[]",
    "bytea",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "tsvector",
    "money",
    "oid",
    "bit(3)",
    "bit varying",
    "bit varying(5)",
    "int4range",
    "int8range",
    "numrange",
    "daterange",
    "tsrange",
    "tstzrange",
    "xml",
    "point",
    "mood",
    "mood[]",
]


def test_every_type_mapping_recreates_the_same_format_type(fresh_db: str) -> None:
    """Create one column per mapped type through SQLAlchemy; PostgreSQL must print it back."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from abparts_ops.core.reset.typemap import RAW_TYPE_SOURCE

    namespace: dict[str, Any] = {"sa": sa, "postgresql": postgresql}
    exec(RAW_TYPE_SOURCE, namespace)  # noqa: S102 - our own constant
    columns = []
    for i, text in enumerate(TYPE_TEXTS):
        source = render_type(text, enums=["mood"]).source
        columns.append(sa.Column(f"c{i}", eval(source, namespace)))  # noqa: S307
    columns.append(
        sa.Column("coll", eval(render_type("text", collation="C").source, namespace))  # noqa: S307
    )
    columns.append(
        sa.Column("coll_arr", eval(render_type("text[]", collation="C").source, namespace))  # noqa: S307
    )
    table = sa.Table("typed", sa.MetaData(), *columns)
    engine = make_engine(fresh_db)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('ok')")
            table.create(conn)
    finally:
        engine.dispose()
    rows = query(
        fresh_db,
        """SELECT attname::text, format_type(atttypid, atttypmod),
                  (SELECT collname::text FROM pg_collation WHERE oid = attcollation)
           FROM pg_attribute WHERE attrelid = 'typed'::regclass AND attnum > 0
           ORDER BY attnum""",
    )
    assert [r[1] for r in rows[: len(TYPE_TEXTS)]] == TYPE_TEXTS
    assert rows[-2][1:] == ("text", "C") and rows[-1][1:] == ("text[]", "C")


def _tables_snapshot(count: int) -> Snapshot:
    tables = {f"t{i:04d}": {"partitioned": False, "partition_key": None, "partition_of": None,
                            "partition_bound": None, "unlogged": False, "foreign": False,
                            "row_security": False, "force_row_security": False,
                            "comment": None}
              for i in range(count)}
    columns = {f"{t}.id": {"table": t, "name": "id", "position": 1, "type": "integer",
                           "nullable": False, "default": None, "generated": None,
                           "identity": None, "collation": None, "comment": f"id of {t}"}
               for t in tables}
    return Snapshot(schema="public", objects={"table": tables, "column": columns})


def test_past_a_size_the_baseline_is_compact() -> None:
    """Past COMPACT_TABLES tables every statement is op.execute of the canonical DDL (a
    string costs Python almost nothing to compile); below, Alembic's operations."""
    from abparts_ops.core.reset.baseline_render import COMPACT_TABLES

    small = render_baseline(_tables_snapshot(COMPACT_TABLES), revision=REVISION,
                            created=CREATED)
    assert small.count("op.create_table(") == COMPACT_TABLES
    large = render_baseline(_tables_snapshot(COMPACT_TABLES + 1), revision=REVISION,
                            created=CREATED)
    assert "op.create_table(" not in large
    assert large.count('op.execute("""CREATE TABLE t') == COMPACT_TABLES + 1
    assert "op.execute(\"COMMENT ON COLUMN t0000.id IS 'id of t0000'\")" in large
    assert large.count('op.drop_table("t') == COMPACT_TABLES + 1
    forced = render_baseline(_tables_snapshot(2), revision=REVISION, created=CREATED,
                             compact=True)
    assert "op.create_table(" not in forced and 'op.execute("""CREATE TABLE t0001' in forced
    compile(large, "large.py", "exec")
