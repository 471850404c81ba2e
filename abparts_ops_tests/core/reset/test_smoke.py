"""The seed's smoke test as a proof, on real PostgreSQL (a scratch database per test)."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.migrate import project_revisions, upgrade
from abparts_ops.core.history.project import load_project
from abparts_ops.core.reset.proofs import Proof, prove_baseline
from abparts_ops.core.reset.smoke import (
    PROOF_DESCRIPTION,
    PROOF_NAME,
    prove_smoke,
    smoke_proof,
)
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.scratch import scratch_database
from abparts_ops_tests.core.history.projects import Rev, write_project

BASE = Rev(
    "b001",
    None,
    "op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True), "
    "sa.Column('name', sa.Text, nullable=False))\n"
    "op.create_table('knowledge_documents', sa.Column('id', sa.BigInteger, primary_key=True))",
    "op.drop_table('knowledge_documents')\nop.drop_table('parts')",
)


def models(extra: bool = False) -> sa.MetaData:
    """The application's models for BASE (``extra``: one column the baseline lacks)."""
    metadata = sa.MetaData()
    columns = [
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    ]
    if extra:
        columns.append(sa.Column("colour", sa.Text))
    sa.Table("parts", metadata, *columns)
    return metadata


def files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_smoke_passes_on_a_baseline_and_writes_no_file(tmp_path: Path, admin_url: str) -> None:
    ini = write_project(tmp_path / "project", [BASE])
    before = files(tmp_path / "project")
    result = prove_smoke(
        admin_url, load_project(ini_path=ini), metadata=models(),
        exclude=["knowledge_documents"],
    )
    assert result.name == PROOF_NAME
    assert result.passed, result.details
    assert result.metadata["autogenerate_empty"] is True
    assert result.metadata["upgrade_ok"] and result.metadata["downgrade_ok"]
    assert "adding nullable `parts.abparts_smoke_" in result.details
    assert files(tmp_path / "project") == before


def test_models_that_differ_from_the_baseline_fail_with_the_operations(
    tmp_path: Path, admin_url: str
) -> None:
    ini = write_project(tmp_path / "project", [BASE])
    result = prove_smoke(
        admin_url, load_project(ini_path=ini), metadata=models(extra=True),
        exclude=["knowledge_documents"],
    )
    assert not result.passed
    assert result.metadata["autogenerate_empty"] is False
    assert "op.add_column('parts', sa.Column('colour'" in result.details


def test_a_template_that_drops_the_generated_operations_fails(
    tmp_path: Path, admin_url: str
) -> None:
    ini = write_project(tmp_path / "project", [BASE])
    mako = tmp_path / "project" / "migrations" / "script.py.mako"
    text = mako.read_text(encoding="utf-8")
    mako.write_text(
        text.replace('${upgrades if upgrades else "pass"}', "pass"), encoding="utf-8"
    )
    result = prove_smoke(
        admin_url, load_project(ini_path=ini), metadata=models(),
        exclude=["knowledge_documents"],
    )
    assert not result.passed
    assert "FAILED" in result.details and result.metadata["upgrade_ok"] is False


def test_without_models_step_one_is_skipped_and_the_revision_still_runs(
    tmp_path: Path, admin_url: str
) -> None:
    ini = write_project(tmp_path / "project", [BASE])
    result = prove_smoke(
        admin_url, load_project(ini_path=ini), metadata=None,
        exclude=["knowledge_documents"],
    )
    assert result.passed, result.details
    assert "step 1 skipped" in result.details


def test_registry_entry_runs_on_its_own_scratch_database(tmp_path: Path, admin_url: str) -> None:
    project = load_project(ini_path=write_project(tmp_path / "project", [BASE]))
    with scratch_database(admin_url) as url:
        engine = make_engine(url)
        try:
            with connect(engine) as conn:
                upgrade(conn, project, "heads")
                ctx = SimpleNamespace(
                    connection=lambda: conn, url=url, project=project, metadata=models(),
                    schema="public", exclude=("knowledge_documents",),
                )
                result = smoke_proof(ctx)
                assert result.passed, result.details
                assert project_revisions(conn, project) == ("b001",)
        finally:
            engine.dispose()


def test_registered_in_the_proofs_registry(tmp_path: Path, admin_url: str) -> None:
    module = f"smoke_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import sqlalchemy as sa\nmetadata = sa.MetaData()\n"
        "sa.Table('parts', metadata, sa.Column('id', sa.BigInteger, primary_key=True), "
        "sa.Column('name', sa.Text, nullable=False))\n",
        encoding="utf-8",
    )
    project = load_project(ini_path=write_project(tmp_path / "project", [BASE]))
    registry = (Proof(PROOF_NAME, PROOF_DESCRIPTION, smoke_proof),)
    results = prove_baseline(
        admin_url, project, Snapshot(schema="public", objects={}),
        exclude=["knowledge_documents"], models=f"{module}:metadata", sys_path=[tmp_path],
        proofs=registry,
    )
    assert list(results) == [PROOF_NAME]
    assert results[PROOF_NAME].passed, results[PROOF_NAME].details
    assert results[PROOF_NAME].metadata["autogenerate_empty"] is True
