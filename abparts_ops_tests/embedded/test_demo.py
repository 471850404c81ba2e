"""The demo ABParts project and its environments, against a real PostgreSQL."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from abparts_ops.core.db import create_database, drop_database, make_engine, with_database
from abparts_ops.core.errors import MigrationError
from abparts_ops.embedded import demo
from abparts_ops.embedded.demo import (
    DEMO_APP_SOURCE,
    DEMO_CONFIG_YAML,
    DEMO_DRIFT_REVISION,
    DEMO_OLD_HEAD,
    DEMO_UNKNOWN_REVISION,
    DemoLayout,
    build_environments,
    build_template,
    demo_database_name,
    demo_environment_variables,
    ensure_demo,
    introduce_drift,
    leave_behind,
    prepare_demo_project,
    remove_drift,
)

REPO = Path(__file__).resolve().parents[2]
TEST_HOME = REPO / ".abparts_ops" / "test"


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _scalar(url: str, sql: str, **params: object) -> object:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def _rows(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params).all()]
    finally:
        engine.dispose()


def _config(layout: DemoLayout, conn: sa.Connection) -> Config:
    cfg = Config(str(layout.alembic_ini))
    cfg.attributes["connection"] = conn
    return cfg


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def source_hashes() -> dict[str, str]:
    """The packaged demo source, hashed before anything in this module runs on a copy."""
    return _tree_hashes(DEMO_APP_SOURCE)


@pytest.fixture(scope="module")
def layout(source_hashes: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> DemoLayout:
    return prepare_demo_project(tmp_path_factory.mktemp("demo_home"))


@pytest.fixture(scope="module")
def upgraded_url(admin_url: str, layout: DemoLayout) -> Iterator[str]:
    """An empty database upgraded with the copy's history (``upgrade heads``)."""
    name = f"t_demo_up_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(_config(layout, conn), "heads")
        yield url
    finally:
        engine.dispose()
        drop_database(admin_url, name)


@pytest.fixture(scope="module")
def template(admin_url: str, layout: DemoLayout) -> str:
    """The shared demo template on the test server (built once, reused across runs)."""
    return build_template(admin_url, layout)


@pytest.fixture
def clone(db_factory: Callable[..., str], template: str) -> str:
    """A database of this test's own, copied from the demo template."""
    return db_factory("t_demo", template=template)


# --------------------------------------------------------------------------- schema
def test_upgrade_from_empty_builds_the_full_schema(upgraded_url: str) -> None:
    url = upgraded_url
    tables = _scalar(
        url,
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
        "AND table_name <> 'alembic_version'",
    )
    assert 60 <= tables <= 66
    columns = _scalar(
        url, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
    )
    assert 550 <= columns <= 650
    enums = _rows(
        url,
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = 'public' AND t.typtype = 'e'",
    )
    assert len(enums) >= 10
    assert ("order_status",) in enums and ("orderstatus",) not in enums
    labels = _rows(
        url,
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "WHERE t.typname = 'part_type' ORDER BY e.enumsortorder",
    )
    assert labels == [("consumable",), ("bulk_material",)]
    shared = _scalar(
        url,
        "SELECT count(*) FROM (SELECT udt_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type = 'USER-DEFINED' "
        "GROUP BY udt_name HAVING count(DISTINCT table_name) >= 2) AS s",
    )
    assert shared >= 3
    views = _rows(
        url, "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'"
    )
    assert views == [("inventory_stock_levels",)]
    assert not _rows(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_name = 'ai_conversation_log'",
    )
    assert {"knowledge_documents", "document_chunks"} <= {
        str(r[0]) for r in _rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }


def test_schema_has_the_tricky_features(upgraded_url: str) -> None:
    url = upgraded_url
    public = "c.relnamespace = 'public'::regnamespace"
    partial = _scalar(
        url,
        f"SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        f"WHERE {public} AND i.indpred IS NOT NULL",
    )
    expression = _scalar(
        url,
        f"SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        f"WHERE {public} AND i.indexprs IS NOT NULL",
    )
    descending = _scalar(
        url,
        f"SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        f"WHERE {public} AND EXISTS (SELECT 1 FROM unnest(i.indoption) AS o WHERE o & 1 = 1)",
    )
    assert partial >= 1 and expression >= 1 and descending >= 1

    fks = _rows(
        url,
        "SELECT conrelid::regclass::text, confrelid::regclass::text, confdeltype, "
        "condeferrable, condeferred FROM pg_constraint "
        "WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    )
    pairs = {(src, dst) for src, dst, *_ in fks}
    assert any(src == dst for src, dst in pairs), "no self-referencing foreign key"
    assert ("users", "warehouses") in pairs and ("warehouses", "users") in pairs
    assert any(deferrable and deferred for *_, deferrable, deferred in fks)
    assert {"c", "n", "r"} <= {str(action) for _, _, action, _, _ in fks}

    checks = _scalar(
        url,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'c' "
        "AND connamespace = 'public'::regnamespace AND conname LIKE 'ck_%'",
    )
    multi_unique = _scalar(
        url,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'u' "
        "AND connamespace = 'public'::regnamespace AND cardinality(conkey) > 1",
    )
    identity = _scalar(
        url,
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_schema = 'public' AND is_identity = 'YES'",
    )
    uuid_pks = _scalar(
        url,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'id' AND column_default = 'gen_random_uuid()'",
    )
    sequences = _scalar(
        url,
        "SELECT count(*) FROM information_schema.sequences WHERE sequence_schema = 'public'",
    )
    comments = _scalar(
        url,
        "SELECT count(*) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid "
        f"WHERE {public} AND d.classoid = 'pg_class'::regclass",
    )
    assert checks >= 10 and multi_unique >= 10 and identity >= 3 and uuid_pks >= 50
    assert sequences >= 2 and comments >= 10
    types = {
        str(r[0])
        for r in _rows(
            url,
            "SELECT DISTINCT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            f"JOIN pg_class c ON c.oid = a.attrelid WHERE {public} AND a.attnum > 0",
        )
    }
    assert {"numeric(12,2)", "jsonb", "text[]", "timestamp with time zone", "uuid"} <= types
    extensions = _rows(url, "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")
    assert extensions == []
    assert _rows(url, "SELECT version_num FROM alembic_version") == [(DEMO_OLD_HEAD,)]


def test_script_directory_is_tangled_but_has_one_head(layout: DemoLayout) -> None:
    script = ScriptDirectory.from_config(Config(str(layout.alembic_ini)))
    revisions = list(script.walk_revisions())
    assert len(revisions) >= 10
    assert script.get_heads() == [DEMO_OLD_HEAD]
    merges = [rev for rev in revisions if rev.is_merge_point]
    assert len(merges) == 1 and len(merges[0].down_revision) == 2
    assert len([rev for rev in revisions if rev.is_branch_point]) == 1
    for rev in revisions:
        assert re.fullmatch(r"[0-9a-f]{12}", rev.revision)
        assert re.fullmatch(rf"{rev.revision}_[a-z0-9_]+\.py", Path(rev.path).name)
        assert rev.doc
    sources = "\n".join(Path(rev.path).read_text() for rev in revisions)
    assert "ADD VALUE" in sources and "UPDATE parts SET" in sources
    assert 'op.drop_table("ai_conversation_log")' in sources
    assert "CREATE VIEW inventory_stock_levels" in sources


def test_models_match_the_upgraded_database(upgraded_url: str, layout: DemoLayout) -> None:
    if str(layout.app_dir) not in sys.path:
        sys.path.insert(0, str(layout.app_dir))
    models = importlib.import_module("app.models")
    engine = make_engine(upgraded_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), models.Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []
    assert {"knowledge_documents", "document_chunks"} <= set(models.Base.metadata.tables)
    assert "inventory_stock_levels" not in models.Base.metadata.tables


def test_downgrade_base_leaves_nothing(clone: str, layout: DemoLayout) -> None:
    engine = make_engine(clone)
    try:
        with engine.begin() as conn:
            command.downgrade(_config(layout, conn), "base")
    finally:
        engine.dispose()
    relations = _rows(
        clone,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname NOT LIKE 'alembic_version%'",
    )
    types = _rows(
        clone,
        "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace "
        "AND typtype IN ('e', 'd', 'c') AND typname NOT LIKE 'alembic_version%'",
    )
    assert relations == [] and types == []
    assert _rows(clone, "SELECT version_num FROM alembic_version") == []


# --------------------------------------------------------------------------- environments
def test_build_environments_creates_three_and_prod_is_unknown(
    admin_url: str, layout: DemoLayout, template: str
) -> None:
    prefix = f"t_demo_{uuid.uuid4().hex[:8]}_"
    names = [demo_database_name(env, prefix=prefix) for env in demo.DEMO_ENVIRONMENTS]
    try:
        urls = build_environments(admin_url, layout, prefix=prefix)
        assert set(urls) == {"dev", "staging", "prod"}
        assert urls["dev"] == with_database(admin_url, f"{prefix}dev")
        for env in ("dev", "staging"):
            assert _rows(urls[env], "SELECT version_num FROM alembic_version") == [(DEMO_OLD_HEAD,)]
        assert _rows(urls["prod"], "SELECT version_num FROM alembic_version") == [
            (DEMO_UNKNOWN_REVISION,)
        ]
        tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        assert _scalar(urls["prod"], tables) == _scalar(urls["dev"], tables) >= 60

        engine = make_engine(urls["prod"])
        try:
            with engine.connect() as conn:
                with pytest.raises(Exception, match="Can't locate revision"):
                    command.upgrade(_config(layout, conn), "head")
                conn.rollback()
        finally:
            engine.dispose()
        engine = make_engine(urls["dev"])
        try:
            with engine.begin() as conn:
                command.upgrade(_config(layout, conn), "head")  # already there: no-op
        finally:
            engine.dispose()

        oid_sql = "SELECT oid FROM pg_database WHERE datname = :n"
        before = {n: _scalar(admin_url, oid_sql, n=n) for n in names}
        assert build_environments(admin_url, layout, prefix=prefix) == urls
        assert {n: _scalar(admin_url, oid_sql, n=n) for n in names} == before
        build_environments(admin_url, layout, prefix=prefix, names=["staging"], rebuild=True)
        after = {n: _scalar(admin_url, oid_sql, n=n) for n in names}
        assert after[f"{prefix}staging"] != before[f"{prefix}staging"]
        assert after[f"{prefix}dev"] == before[f"{prefix}dev"]
        leftovers = _rows(
            admin_url,
            "SELECT datname FROM pg_database WHERE datname LIKE :p",
            p=f"{prefix}%build%",
        )
        assert leftovers == []
    finally:
        for name in names:
            drop_database(admin_url, name)


def test_template_is_reused_and_marked(admin_url: str, layout: DemoLayout, template: str) -> None:
    started = time.monotonic()
    assert build_template(admin_url, layout) == template
    assert time.monotonic() - started < 2
    row = _rows(
        admin_url,
        "SELECT datistemplate, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname = :n",
        n=template,
    )
    assert row and row[0][0] is True and DEMO_OLD_HEAD in str(row[0][1])


def test_environment_variables() -> None:
    urls = {"dev": "u-dev", "staging": "u-staging", "prod": "u-prod"}
    assert demo_environment_variables(urls, "u-scratch") == {
        "ABPARTS_DEV_URL": "u-dev",
        "ABPARTS_STAGING_URL": "u-staging",
        "ABPARTS_PROD_URL": "u-prod",
        "ABPARTS_SCRATCH_URL": "u-scratch",
    }
    assert demo_database_name("prod") == "abparts_prod"


# --------------------------------------------------------------------------- project copy
def test_prepare_demo_project_works_on_a_copy(
    source_hashes: dict[str, str], layout: DemoLayout, upgraded_url: str
) -> None:
    # an upgrade has run on the copy (upgraded_url): the package is byte-for-byte unchanged
    assert _tree_hashes(DEMO_APP_SOURCE) == source_hashes
    assert layout.root.name == "demo" and layout.app_dir == layout.root / "app"
    assert layout.alembic_ini.is_file() and layout.versions_dir.is_dir()
    copied = {
        path: digest
        for path, digest in _tree_hashes(layout.app_dir).items()
        if "__pycache__" not in path
    }
    assert copied == {p: d for p, d in source_hashes.items() if "__pycache__" not in p}
    assert layout.config_path.read_text() == DEMO_CONFIG_YAML
    assert "%(here)s/alembic" in layout.alembic_ini.read_text()
    assert "prod:    {url_env: ABPARTS_PROD_URL, protected: true}" in DEMO_CONFIG_YAML


def test_prepare_demo_project_is_idempotent_and_fresh_moves_aside(tmp_path: Path) -> None:
    first = prepare_demo_project(tmp_path)
    marker = first.versions_dir / "zz_local_edit.txt"
    marker.write_text("kept")
    first.config_path.write_text(DEMO_CONFIG_YAML + "# edited\n")
    again = prepare_demo_project(tmp_path)
    assert again == first and marker.exists()
    assert first.config_path.read_text().endswith("# edited\n")

    fresh = prepare_demo_project(tmp_path, fresh=True)
    assert fresh == first and not marker.exists()
    assert fresh.config_path.read_text() == DEMO_CONFIG_YAML
    old_apps = list(fresh.root.glob("app.old-*"))
    old_configs = list(fresh.root.glob("abparts_ops.yaml.old-*"))
    assert len(old_apps) == 1 and (old_apps[0] / "alembic" / "versions" / marker.name).exists()
    assert len(old_configs) == 1 and old_configs[0].read_text().endswith("# edited\n")
    assert not list(fresh.root.glob(".*tmp-*"))


# --------------------------------------------------------------------------- drift
def test_introduce_and_remove_drift(clone: str) -> None:
    index_sql = "SELECT count(*) FROM pg_indexes WHERE indexname = 'drift_demo_idx'"
    default_sql = (
        "SELECT column_default FROM information_schema.columns "
        "WHERE table_name = 'parts' AND column_name = 'unit_of_measure'"
    )
    original_default = _scalar(clone, default_sql)

    message = introduce_drift(clone)
    assert "drift_demo_idx" in message and "\n" not in message
    assert _scalar(clone, index_sql) == 1
    remove_drift(clone)
    assert _scalar(clone, index_sql) == 0

    message = introduce_drift(clone, "default")
    assert "unit_of_measure" in message
    assert "units" in str(_scalar(clone, default_sql))
    remove_drift(clone)
    assert _scalar(clone, default_sql) == original_default

    message = introduce_drift(clone, "revision")
    assert DEMO_DRIFT_REVISION in message and DEMO_OLD_HEAD in message
    assert _rows(clone, "SELECT version_num FROM alembic_version") == [(DEMO_DRIFT_REVISION,)]

    with pytest.raises(ValueError, match="index, default, revision"):
        introduce_drift(clone, "column")


# --------------------------------------------------------------------------- behind
def test_leave_behind_downgrades_one_revision_once(clone: str, layout: DemoLayout) -> None:
    """The old history's downgrade of its head: the head's tables go, the version row is
    its parent's; a second call, or a database past the reset, is left as it is; a
    database the demo never puts at the old head is refused, unchanged."""
    tables_sql = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    transfers_sql = "SELECT to_regclass('public.stock_transfers') IS NOT NULL"
    before = _scalar(clone, tables_sql)
    assert _scalar(clone, transfers_sql) is True

    line = leave_behind(clone, layout, label="staging")
    assert line == (
        f"staging left one revision behind dev: the old history's downgrade ran, "
        f"{DEMO_OLD_HEAD} -> {DEMO_DRIFT_REVISION}"
    )
    assert _rows(clone, "SELECT version_num FROM alembic_version") == [(DEMO_DRIFT_REVISION,)]
    assert _scalar(clone, transfers_sql) is False
    assert int(str(_scalar(clone, tables_sql))) < int(str(before))
    after = _scalar(clone, tables_sql)

    assert "already one revision behind dev" in leave_behind(clone, layout, label="staging")
    assert _scalar(clone, tables_sql) == after

    def set_version(revision: str) -> None:
        engine = make_engine(clone)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
                )
        finally:
            engine.dispose()

    set_version("0123456789ab")  # a baseline the old history does not hold
    assert "past the reset" in leave_behind(clone, layout, label="staging")
    for revision in (DEMO_UNKNOWN_REVISION, "1a7e3c9d5b20"):  # prod's; the old root
        set_version(revision)
        with pytest.raises(MigrationError, match="not at the old head .*nothing was changed"):
            leave_behind(clone, layout, label="staging")
        assert _rows(clone, "SELECT version_num FROM alembic_version") == [(revision,)]
        assert _scalar(clone, tables_sql) == after


# --------------------------------------------------------------------------- ensure_demo
# The demo in the test server's own home, whose databases this test drops after: never at
# the same time as cli/test_demo_commands.py's `demo env` test, which uses them.
@pytest.mark.xdist_group("demo_in_the_test_home")
@pytest.mark.skipif(
    bool(os.environ.get("ABPARTS_OPS_TEST_DATABASE_URL")),
    reason="ensure_demo runs the embedded server; the tests use an external one",
)
def test_ensure_demo_sets_up_everything_and_is_fast_the_second_time(
    admin_url: str, template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = ("ABPARTS_DEV_URL", "ABPARTS_STAGING_URL", "ABPARTS_SCRATCH_URL")
    for key in variables:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ABPARTS_PROD_URL", "postgresql://user-set/prod")
    try:
        layout = ensure_demo(TEST_HOME)
        assert layout.root == (TEST_HOME / "demo").resolve()
        assert os.environ["ABPARTS_PROD_URL"] == "postgresql://user-set/prod"
        assert os.environ["ABPARTS_SCRATCH_URL"] == admin_url
        assert os.environ["ABPARTS_DEV_URL"] == with_database(admin_url, "abparts_dev")
        assert _rows(
            os.environ["ABPARTS_STAGING_URL"], "SELECT version_num FROM alembic_version"
        ) == [(DEMO_OLD_HEAD,)]
        started = time.monotonic()
        assert ensure_demo(TEST_HOME) == layout
        assert time.monotonic() - started < 1.0
    finally:
        for env in demo.DEMO_ENVIRONMENTS:
            drop_database(admin_url, demo_database_name(env))


def test_template_is_built_from_the_old_history_after_a_reset(
    admin_url: str, tmp_path: Path
) -> None:
    """Once the pipeline has archived the copy's old revisions, the package's are used."""
    layout = prepare_demo_project(tmp_path)
    archive = layout.app_dir / "archived_versions"
    layout.versions_dir.rename(archive)
    layout.versions_dir.mkdir()
    name = f"t_demo_tpl_{uuid.uuid4().hex[:8]}"
    try:
        assert build_template(admin_url, layout, name=name) == name
        url = with_database(admin_url, name)
        assert _rows(url, "SELECT version_num FROM alembic_version") == [(DEMO_OLD_HEAD,)]
        assert list(layout.versions_dir.iterdir()) == []
    finally:
        engine = make_engine(admin_url)
        try:
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    f'ALTER DATABASE "{name}" IS_TEMPLATE false'
                )
        except sa.exc.DBAPIError:
            pass
        finally:
            engine.dispose()
        drop_database(admin_url, name)
