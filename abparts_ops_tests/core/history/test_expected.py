"""Expected schemas per revision: built on scratch, compared with real upgrades, cached."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from abparts_ops.core.db import connect, make_engine, with_database
from abparts_ops.core.errors import MigrationError, SchemaError
from abparts_ops.core.history.archive import archive_revisions, archived_revisions
from abparts_ops.core.history.expected import ExpectedIndex, ExpectedSchemas, cache_key
from abparts_ops.core.history.expected_build import build_expected_schemas
from abparts_ops.core.history.expected_cache import (
    cache_path,
    cached_expected,
    default_cache_dir,
    load_or_build_expected,
    refresh_expected,
)
from abparts_ops.core.history.graph import history_fingerprint
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.history.revisions import read_history, versions_fingerprint
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.watch.probe import probe
from abparts_ops_tests.core.history.projects import Rev, table, write_project, write_rev

EXCLUDE = ("ignored_*",)


def _linear() -> list[Rev]:
    up, down = table("items")
    return [
        Rev("r001", None, up, down),
        Rev(
            "r002",
            "r001",
            "op.add_column('items', sa.Column('price', sa.Numeric(10, 2)))\n"
            "op.create_table('ignored_log', sa.Column('id', sa.Integer, primary_key=True))",
            "op.drop_table('ignored_log')\nop.drop_column('items', 'price')",
        ),
        Rev(
            "r003",
            "r002",
            "op.create_index('ix_items_label', 'items', ['label'])",
            "op.drop_index('ix_items_label', table_name='items')",
        ),
    ]


def _branched() -> list[Rev]:
    up, down = table("base_t")
    return [
        Rev("a001", None, up, down),
        Rev("b001", "a001", "op.add_column('base_t', sa.Column('from_b', sa.Integer))"),
        Rev("c001", "a001", "op.add_column('base_t', sa.Column('from_c', sa.Integer))"),
        Rev("d001", ("b001", "c001"), "op.create_table('merged', sa.Column('id', sa.Integer))"),
    ]


def _project(root: Path, revs: list[Rev]) -> AlembicProject:
    return load_project(write_project(root, revs))


def _upgraded(url: str, project: AlembicProject, target: str) -> str:
    """Upgrade the database of ``url`` to ``target`` the plain way; returns the url."""
    engine = make_engine(url)
    try:
        with connect(engine) as conn:
            upgrade(conn, project, target)
    finally:
        engine.dispose()
    return url


def _cache_file(cache: Path, expected: ExpectedSchemas) -> Path:
    key = cache_key(
        expected.history_fingerprint,
        schema="public",
        exclude=EXCLUDE,
        version_table="alembic_version",
    )
    return cache_path(cache, key)


def _columns(snapshot: Snapshot) -> set[str]:
    return set(snapshot.kind("column"))


def test_linear_history_snapshot_per_revision(
    tmp_path: Path, admin_url: str, fresh_db: str
) -> None:
    project = _project(tmp_path, _linear())
    seen: list[tuple[str, int, int]] = []
    expected = build_expected_schemas(
        admin_url, project, exclude=EXCLUDE, progress=lambda *a: seen.append(a)
    )
    assert expected.order == ("r001", "r002", "r003")
    assert expected.heads == ("r003",)
    assert expected.parents == {"r001": (), "r002": ("r001",), "r003": ("r002",)}
    assert seen == [("r001", 1, 3), ("r002", 2, 3), ("r003", 3, 3)]

    r1, r2, r3 = (expected.snapshot(r) for r in expected.order)
    assert r1 is not None and r2 is not None and r3 is not None
    assert r1.table_names() == ["items"]
    assert "items.price" not in _columns(r1) and "items.price" in _columns(r2)
    assert r2.table_names() == ["items"]  # ignored_log excluded, alembic_version too
    assert "ignored_log" in r2.excluded
    assert not r2.kind("index") or "ix_items_label" not in r2.kind("index")
    assert "ix_items_label" in r3.kind("index")
    assert len({r1.fingerprint, r2.fingerprint, r3.fingerprint}) == 3
    assert all(expected.probe_fingerprint(r) for r in expected.order)
    assert expected.snapshot("nope") is None and expected.probe_fingerprint("nope") is None

    _upgraded(fresh_db, project, "heads")
    plain = take_snapshot(fresh_db, exclude=EXCLUDE)
    assert plain == r3
    probed = probe(fresh_db, environment="plain", exclude=EXCLUDE)
    assert probed.fingerprint == expected.probe_fingerprint("r003")
    assert probed.fingerprint != expected.probe_fingerprint("r002")
    assert expected.index().table_counts == {"r001": 1, "r002": 1, "r003": 1}


def test_pending_for_each_state(tmp_path: Path, admin_url: str) -> None:
    expected = build_expected_schemas(admin_url, _project(tmp_path, _linear()))
    index = expected.index()
    for source in (expected, index):
        assert source.pending(None) == ("r001", "r002", "r003")
        assert source.pending(()) == ("r001", "r002", "r003")
        assert source.pending(("r001",)) == ("r002", "r003")
        assert source.pending(("r002",)) == ("r003",)
        assert source.pending(("r003",)) == ()
        assert source.knows("r002") and not source.knows("zzz")
        with pytest.raises(MigrationError, match="zzz"):
            source.pending(("zzz",))


def test_branched_history_matches_upgrade_from_empty(
    tmp_path: Path, admin_url: str, db_factory: Callable[..., str]
) -> None:
    project = _project(tmp_path, _branched())
    expected = build_expected_schemas(admin_url, project)
    assert expected.order == ("a001", "b001", "c001", "d001")
    assert expected.heads == ("d001",)
    c = expected.snapshot("c001")
    assert c is not None
    assert "base_t.from_c" in _columns(c) and "base_t.from_b" not in _columns(c)
    for rev in expected.order:
        url = _upgraded(db_factory(), project, rev)
        assert take_snapshot(url, require_tables=False) == expected.snapshot(rev), rev
        assert probe(url, environment=rev).fingerprint == expected.probe_fingerprint(rev)
    assert expected.pending(("b001",)) == ("c001", "d001")
    assert expected.pending(("b001", "c001")) == ("d001",)
    assert expected.pending(("c001",)) == ("b001", "d001")
    assert expected.pending(("d001",)) == ()


def test_failing_revision_names_file_and_line(tmp_path: Path, admin_url: str) -> None:
    revs = _linear()
    revs[1] = Rev("r002", "r001", "op.execute('SELECT * FROM no_such_table')")
    project = _project(tmp_path, revs[:2])
    with pytest.raises(MigrationError) as caught:
        build_expected_schemas(admin_url, project)
    message = str(caught.value)
    assert "\n" not in message
    assert "revision r002" in message
    path = project.versions_dirs[0] / "r002_rev.py"
    line = 1 + path.read_text().splitlines().index("    op.execute('SELECT * FROM no_such_table')")
    assert f"{path} line {line}" in message
    assert "no_such_table" in message
    assert "password" not in message.lower() and "@" not in message


def test_cache_reuse_invalidation_and_corruption(tmp_path: Path, admin_url: str) -> None:
    project = _project(tmp_path / "app", _linear())
    cache = tmp_path / "cache"
    assert cached_expected(project, exclude=EXCLUDE, cache_dir=cache) is None
    first, reused = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert not reused
    second, reused = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert reused and second == first
    assert cached_expected(project, exclude=EXCLUDE, cache_dir=cache) == first
    assert cached_expected(project, exclude=(), cache_dir=cache) is None
    path = _cache_file(cache, first)
    assert path.is_file() and not list(cache.glob(".*.tmp"))
    assert path.stat().st_size < 4096  # a manifest: the snapshots are stored apart, once

    # other exclusions are another cache entry
    _other, reused = load_or_build_expected(admin_url, project, cache_dir=cache)
    assert not reused

    # a revision file changes: built again, with the new revision
    versions = project.versions_dirs[0]
    write_rev(versions, Rev("r004", "r003", "op.add_column('items', sa.Column('sku', sa.Text))"))
    third, reused = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert not reused and third.heads == ("r004",)
    assert cached_expected(project, exclude=EXCLUDE, cache_dir=cache) == third
    assert third.history_fingerprint != first.history_fingerprint
    assert third.snapshot("r003") == first.snapshot("r003")

    # a corrupt manifest is ignored and replaced
    new_path = _cache_file(cache, third)
    new_path.write_text("{not json", encoding="utf-8")
    fourth, reused = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert not reused and fourth == third
    assert json.loads(new_path.read_text(encoding="utf-8"))["history_fingerprint"] == (
        third.history_fingerprint
    )

    # a foreign but sound manifest under that name (other history) is ignored too
    new_path.write_bytes(path.read_bytes())
    _fifth, reused = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert not reused


def _snapshot_file(cache: Path, expected: ExpectedSchemas, rev: str) -> Path:
    manifest = json.loads(_cache_file(cache, expected).read_text(encoding="utf-8"))
    return cache / "snapshots" / f"{manifest['revisions'][rev]['snapshot']}.json"


def test_a_cached_snapshot_without_its_fingerprint_is_rebuilt(
    tmp_path: Path, admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19, item 4: an edited snapshot whose fingerprint was removed is never trusted.

    Before, a cache entry without ``fingerprint`` skipped the check and the edited
    schema became the reference (``drift`` said in_sync against it).
    """
    project = _project(tmp_path / "app", _linear())
    cache = tmp_path / "cache"
    built, _ = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    original = built.snapshot("r002")
    assert original is not None
    path = _snapshot_file(cache, built, "r002")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["fingerprint"] == original.fingerprint  # every cached snapshot carries it
    del data["fingerprint"]
    data["objects"]["table"]["evil"] = {"kind": "r"}
    path.write_text(json.dumps(data), encoding="utf-8")

    # a reader that does not build refuses it, in one line
    with pytest.raises(SchemaError, match="no fingerprint|changed"):
        cached = cached_expected(project, exclude=EXCLUDE, cache_dir=cache)
        assert cached is not None
        cached.snapshot("r002")
    assert not path.exists()  # removed: the next build makes it again

    path.write_text(json.dumps(data), encoding="utf-8")  # corrupt again
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again, reused = load_or_build_expected(
            admin_url, project, exclude=EXCLUDE, cache_dir=cache
        )
        assert reused  # the manifest is sound; the snapshot is checked when read
        rebuilt = again.snapshot("r002")
    assert rebuilt == original and "evil" not in rebuilt.kind("table")
    assert any("corrupt" in r.getMessage() and "r002" in r.getMessage() for r in caplog.records)
    assert _snapshot_file(cache, again, "r002").is_file()

    # a manifest entry without its snapshot's fingerprint is a corrupt entry as a whole
    manifest_path = _cache_file(cache, built)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    del manifest["revisions"]["r003"]["fingerprint"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        last, reused = load_or_build_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert not reused and last == built
    assert any("no snapshot fingerprint" in r.getMessage() for r in caplog.records)

    # the self-contained JSON form refuses a snapshot without one too
    whole = json.loads(built.to_json())
    del whole["snapshots"]["r001"]["fingerprint"]
    with pytest.raises(SchemaError, match="carries no fingerprint"):
        ExpectedSchemas.from_dict(whole)


def test_a_new_revision_builds_only_itself_from_the_kept_template(
    tmp_path: Path, admin_url: str
) -> None:
    """Issue 19, item 3: one new revision on a cached history is the only one built."""
    project = _project(tmp_path / "app", _linear())
    cache = tmp_path / "cache"
    cold = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert not cold.reused and cold.base is None
    assert cold.built == cold.applied == ("r001", "r002", "r003")
    assert cold.seeds == ("empty",)

    write_rev(
        project.versions_dirs[0],
        Rev("r004", "r003", "op.add_column('items', sa.Column('sku', sa.Text))"),
    )
    seen: list[tuple[str, int, int]] = []
    warm = refresh_expected(
        admin_url, project, exclude=EXCLUDE, cache_dir=cache, progress=lambda *a: seen.append(a)
    )
    assert not warm.reused and warm.base == cold.expected.history_fingerprint
    assert warm.built == ("r004",) and warm.applied == ("r004",)  # one upgrade, one snapshot
    assert warm.seeds == ("template at r003",)
    assert seen == [("r004", 1, 1)]
    assert warm.delta.added == ("r004",) and not warm.delta.changed
    assert "1 revision(s) built" in warm.describe()
    assert warm.expected == build_expected_schemas(admin_url, project, exclude=EXCLUDE)
    assert warm.expected.changes == {}

    # nothing new: reused, nothing built
    again = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert again.reused and again.built == () and again.expected == warm.expected


def test_an_edited_revision_is_rebuilt_from_it_onwards_and_remembered(
    tmp_path: Path, admin_url: str
) -> None:
    """A revision edited in place (same id): only it and what follows are built again."""
    project = _project(tmp_path / "app", _linear())
    cache = tmp_path / "cache"
    before = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache).expected
    write_rev(
        project.versions_dirs[0],
        Rev("r002", "r001", "op.add_column('items', sa.Column('price', sa.Numeric(12, 4)))"),
    )
    after = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert after.delta.changed == ("r002",) and not after.delta.added
    assert after.built == ("r002", "r003")  # r001 is reused
    assert after.applied == ("r001", "r002", "r003")  # r001 replayed, never snapshotted
    assert after.seeds == ("empty",)  # the template holds the old r002: not usable
    cold = build_expected_schemas(admin_url, project, exclude=EXCLUDE)
    assert after.expected.snapshots == cold.snapshots
    # what the old content built is remembered, for environments that ran it
    for rev in ("r002", "r003"):
        change = after.expected.change(rev)
        assert change is not None and change.changed == ("r002",)
        assert change.previous_probe == before.probe_fingerprint(rev)
        assert change.previous_probe != after.expected.probe_fingerprint(rev)
    assert after.expected.change("r001") is None
    assert after.expected.index().change("r003") == after.expected.change("r003")
    round_trip = ExpectedIndex.from_dict(json.loads(json.dumps(after.expected.index().to_dict())))
    assert round_trip.changes == after.expected.changes

    # a later new revision keeps the record of the unchanged ones
    write_rev(
        project.versions_dirs[0],
        Rev("r004", "r003", "op.add_column('items', sa.Column('sku', sa.Text))"),
    )
    later = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert later.built == ("r004",)
    assert later.expected.change("r003") == after.expected.change("r003")
    assert later.expected.change("r004") is None


def test_a_template_that_changed_is_not_used(
    tmp_path: Path, admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The kept template is checked (version rows, probe fingerprint) before it is used."""
    project = _project(tmp_path / "app", _linear())
    cache = tmp_path / "cache"
    refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    manifest = next(cache.glob("manifest-*.json"))
    template = json.loads(manifest.read_text(encoding="utf-8"))["template"]
    assert template["applied"] == ["r001", "r002", "r003"] and template["rows"] == ["r003"]
    _run(with_database(admin_url, template["database"]), "CREATE TABLE sneaked_in (id int)")
    write_rev(
        project.versions_dirs[0],
        Rev("r004", "r003", "op.add_column('items', sa.Column('sku', sa.Text))"),
    )
    with caplog.at_level(logging.WARNING):
        warm = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert warm.seeds == ("empty",) and warm.built == ("r004",)
    assert warm.applied == ("r001", "r002", "r003", "r004")
    assert any("not using expected-schemas template" in r.getMessage() for r in caplog.records)
    assert "sneaked_in" not in warm.expected.snapshot("r004").kind("table")
    assert warm.expected == build_expected_schemas(admin_url, project, exclude=EXCLUDE)


def _run(url: str, sql: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def test_json_round_trip_and_corruption(tmp_path: Path, admin_url: str) -> None:
    expected = build_expected_schemas(admin_url, _project(tmp_path, _branched()))
    again = ExpectedSchemas.from_json(expected.to_json())
    assert again == expected
    assert again.probe_fingerprint("d001") == expected.probe_fingerprint("d001")
    assert again.index() == expected.index()
    index = expected.index()
    assert ExpectedIndex.from_dict(json.loads(json.dumps(index.to_dict()))) == index

    data = json.loads(expected.to_json())
    data["snapshots"]["c001"]["objects"]["table"]["evil"] = {}
    with pytest.raises(SchemaError, match="corrupt"):
        ExpectedSchemas.from_dict(data)
    data = json.loads(expected.to_json())
    data["heads"] = ["a001"]
    with pytest.raises(SchemaError, match="corrupt"):
        ExpectedSchemas.from_dict(data)
    data = json.loads(expected.to_json())
    data["version"] = 99
    with pytest.raises(SchemaError, match="version 99"):
        ExpectedSchemas.from_dict(data)
    raw = index.to_dict()
    raw["revisions"][0]["probe"] = "0" * 64
    with pytest.raises(SchemaError, match="corrupt"):
        ExpectedIndex.from_dict(raw)
    with pytest.raises(SchemaError, match="not an"):
        ExpectedIndex.from_dict({"format": "something else"})


def test_index_of_twenty_revisions_is_small() -> None:
    order = tuple(f"{i:012x}" for i in range(1, 21))
    index = ExpectedIndex(
        history_fingerprint="f" * 64,
        schema="public",
        exclude=("knowledge_documents", "document_chunks"),
        version_table="alembic_version",
        heads=(order[-1],),
        order=order,
        parents={rev: (order[i - 1],) if i else () for i, rev in enumerate(order)},
        probe_fingerprints={rev: "a" * 64 for rev in order},
        table_counts={rev: 62 for rev in order},
    )
    size = len(json.dumps(index.to_dict(), separators=(",", ":")))
    assert size < 4096, size
    assert index.pending((order[17],)) == order[18:]


def test_history_fingerprint_matches_the_other_formulas(tmp_path: Path) -> None:
    project = _project(tmp_path, _branched())
    fingerprint = history_fingerprint(project)
    assert fingerprint == versions_fingerprint(project.versions_dirs)
    assert fingerprint == read_history(project).fingerprint


def test_default_cache_dir_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    assert default_cache_dir() == tmp_path / "c" / "expected"
    monkeypatch.delenv("ABPARTS_OPS_CACHE")
    assert default_cache_dir() == tmp_path / "dh" / "abparts_ops" / "expected"
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "abparts_ops" / "expected"


def test_archived_revisions(tmp_path: Path) -> None:
    project = _project(tmp_path, _linear())
    versions = project.versions_dirs[0]
    archive_revisions(versions, keep=[versions / "r003_rev.py"], stamp="20240101_000000")
    write_rev(versions, Rev("r002", "r003", message="same id, archived again later"))
    archive_revisions(versions, keep=[versions / "r003_rev.py"], stamp="20250101_000000")
    (versions.parent / "versions_archive_20250101_000000" / "notes.py").write_text("x = 1\n")
    assert archived_revisions(project) == {
        "r001": "versions_archive_20240101_000000",
        "r002": "versions_archive_20250101_000000",
    }
    assert archived_revisions(_project(tmp_path / "other", _linear())) == {}


def test_depends_on_counts_as_applied(
    tmp_path: Path, admin_url: str, db_factory: Callable[..., str]
) -> None:
    up_a, _ = table("a_t")
    up_x, _ = table("x_t")
    revs = [
        Rev("a001", None, up_a),
        Rev("x001", None, up_x, message="a second root"),
        Rev("b001", "a001", "op.add_column('x_t', sa.Column('from_b', sa.Integer))",
            depends_on=("x001",)),
    ]
    project = _project(tmp_path, revs)
    expected = build_expected_schemas(admin_url, project)
    assert expected.dependencies == {"b001": ("x001",)}
    b = expected.snapshot("b001")
    assert b is not None and b.table_names() == ["a_t", "x_t"]
    url = _upgraded(db_factory(), project, "b001")
    assert take_snapshot(url) == b
    assert expected.pending(("b001",)) == ()
    history_order = tuple(info.revision for info in read_history(project).revisions)
    assert history_order == ("a001", "b001", "x001")  # down revisions only
    assert expected.order == ("a001", "x001", "b001")  # dependencies first
    assert expected.index().pending(("a001",)) == ("x001", "b001")
    again = ExpectedIndex.from_dict(expected.index().to_dict())
    assert again.pending(("b001",)) == ()


def test_no_scratch_database_is_left_behind(tmp_path: Path, admin_url: str) -> None:
    build_expected_schemas(admin_url, _project(tmp_path, _branched()))
    engine = make_engine(admin_url)
    try:
        with connect(engine) as conn:
            left = conn.exec_driver_sql(
                "SELECT datname FROM pg_database WHERE datname LIKE %(like)s",
                {"like": f"abparts\\_scratch\\_%\\_{os.getpid()}\\_%"},
            ).scalars().all()
    finally:
        engine.dispose()
    assert left == []


def test_after_a_reset_the_head_is_the_source(
    tmp_path: Path, admin_url: str, fresh_db: str
) -> None:
    """A baseline rendered from a source builds, as the history's head, that very source."""
    _upgraded(fresh_db, _project(tmp_path / "old", _linear()), "heads")
    source = take_snapshot(fresh_db, exclude=EXCLUDE, source="dev")
    reset = tmp_path / "reset"
    write_project(reset, [])
    versions = reset / "migrations" / "versions"
    text = render_baseline(source, revision="base00000001", created=datetime(2026, 12, 1))
    (versions / "base00000001_baseline_schema.py").write_text(text, encoding="utf-8")
    project = load_project(reset / "alembic.ini")
    expected = build_expected_schemas(admin_url, project, exclude=EXCLUDE)
    head = expected.snapshot("base00000001")
    assert head is not None
    assert diff_snapshots(source, head).is_empty
    assert head.objects == source.objects
    assert expected.probe_fingerprint("base00000001") == source.probe_fingerprint


def test_privileges_are_read_only_when_asked_and_keep_their_own_cache(
    tmp_path: Path, admin_url: str
) -> None:
    """``compare_privileges``: a GRANT in the history is in the snapshots only with
    ``privileges=True``, and the two readings never share a cache file."""
    up, down = table("items")
    revs = [
        Rev("p001", None, up, down),
        Rev("p002", "p001", "op.execute('GRANT SELECT ON items TO PUBLIC')",
            "op.execute('REVOKE SELECT ON items FROM PUBLIC')"),
    ]
    project = _project(tmp_path / "proj", revs)
    cache = tmp_path / "cache"
    plain, reused = load_or_build_expected(admin_url, project, cache_dir=cache)
    assert not reused and not plain.privileges
    assert plain.snapshot("p002").kind("privilege") == {}
    granted, reused = load_or_build_expected(admin_url, project, cache_dir=cache, privileges=True)
    assert not reused, "a cache built without privileges must not answer for privileges"
    assert granted.privileges and granted.index().privileges
    assert granted.snapshot("p002").kind("privilege")
    assert granted.snapshot("p001").kind("privilege") == {}
    assert granted.probe_fingerprint("p002") != plain.probe_fingerprint("p002")
    assert ExpectedSchemas.from_json(granted.to_json()).privileges
    assert ExpectedIndex.from_dict(granted.index().to_dict()).privileges
    again, reused = load_or_build_expected(admin_url, project, cache_dir=cache, privileges=True)
    assert reused and again.probe_fingerprint("p002") == granted.probe_fingerprint("p002")


def test_a_failing_new_revision_gives_the_template_back(tmp_path: Path, admin_url: str) -> None:
    """A build that fails on the new revision leaves the template as it was kept."""
    project = _project(tmp_path / "app", _linear())
    cache = tmp_path / "cache"
    refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    versions = project.versions_dirs[0]
    write_rev(versions, Rev("r004", "r003", "op.execute('ALTER TABLE nowhere ADD COLUMN x int')"))
    with pytest.raises(MigrationError, match="revision r004"):
        refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    write_rev(versions, Rev("r004", "r003", "op.add_column('items', sa.Column('sku', sa.Text))"))
    fixed = refresh_expected(admin_url, project, exclude=EXCLUDE, cache_dir=cache)
    assert fixed.seeds == ("template at r003",) and fixed.applied == ("r004",)
    assert fixed.expected == build_expected_schemas(admin_url, project, exclude=EXCLUDE)


def test_a_cache_that_cannot_be_written_is_not_fatal(
    tmp_path: Path, admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    project = _project(tmp_path / "app", _linear())
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        expected, reused = load_or_build_expected(
            admin_url, project, exclude=EXCLUDE, cache_dir=not_a_folder
        )
    assert not reused and list(expected.snapshots) == ["r001", "r002", "r003"]
    assert expected == build_expected_schemas(admin_url, project, exclude=EXCLUDE)
    assert any("cannot be written" in r.getMessage() for r in caplog.records)
