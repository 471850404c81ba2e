"""No password anywhere: events, log lines, metadata, errors, stored runs, instance files.

The environments are reached through a role of their own with a distinctive password;
stamps and verifications run on the success and the failure paths (dry run, stamp,
refusal of prod, drift, a wrong password, an empty variable). Then every trace those
runs left is searched for the password.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from abparts_ops.core.db import make_engine
from abparts_ops.embedded.demo import introduce_drift
from abparts_ops_tests.defs.environments.conftest import VARIABLES, Pipeline, check_results

SECRET = f"Sekr3tPw{uuid.uuid4().hex[:10]}"


def _admin(admin_url: str, sql: str) -> None:
    engine = make_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(sql)
    finally:
        engine.dispose()


@pytest.fixture
def secret_role(pipeline: Pipeline) -> Iterator[str]:
    """A login role whose password is :data:`SECRET` (dropped afterwards)."""
    role = f"abpt_secret_{uuid.uuid4().hex[:8]}"
    _admin(pipeline.admin_url, f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{SECRET}'")
    try:
        yield role
    finally:
        _admin(pipeline.admin_url, f"DROP ROLE IF EXISTS {role}")


def _as_role(url: str, role: str, password: str) -> str:
    return (
        sa.engine.make_url(url)
        .set(username=role, password=password)
        .render_as_string(hide_password=False)
    )


def test_password_appears_nowhere(
    pipeline: Pipeline,
    envs: dict[str, str],
    secret_role: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Stamp and verify on success and failure paths; then search everything they left."""
    caplog.set_level("DEBUG")
    staging = _as_role(envs["staging"], secret_role, SECRET)
    prod = _as_role(envs["prod"], secret_role, SECRET)
    monkeypatch.setenv(VARIABLES["staging"], staging)
    monkeypatch.setenv(VARIABLES["prod"], prod)
    runs = {}
    runs["dry_run"] = pipeline.stamp("staging")
    runs["stamp"] = pipeline.stamp("staging", dry_run=False)
    runs["prod_refused"] = pipeline.stamp("prod", dry_run=False)
    runs["verify_ok"] = pipeline.verify()
    introduce_drift(staging, "index")
    runs["verify_drift"] = pipeline.verify()
    runs["stamp_drift"] = pipeline.stamp("staging", dry_run=False)
    # The same password for a role that has another one: authentication fails.
    _admin(pipeline.admin_url, f"ALTER ROLE {secret_role} PASSWORD 'another-{uuid.uuid4().hex}'")
    runs["stamp_bad_password"] = pipeline.stamp("prod", dry_run=False, confirm="prod")
    runs["verify_bad_password"] = pipeline.verify()
    monkeypatch.setenv(VARIABLES["prod"], "")
    runs["stamp_empty_variable"] = pipeline.stamp("prod", dry_run=False, confirm="prod")

    outcome = {name: result.success for name, result in runs.items()}
    assert outcome == {
        "dry_run": True,
        "stamp": True,
        "prod_refused": False,
        "verify_ok": True,
        "verify_drift": True,
        "stamp_drift": False,
        "stamp_bad_password": False,
        "verify_bad_password": True,
        "stamp_empty_variable": False,
    }
    verified = check_results(runs["verify_ok"])
    assert verified[("staging", "revision_is_head")].passed
    assert verified[("staging", "schema_matches_reference")].passed
    assert not verified[("prod", "revision_is_head")].passed  # prod was refused
    assert not check_results(runs["verify_drift"])[("staging", "schema_matches_reference")].passed
    bad = check_results(runs["verify_bad_password"])[("prod", "revision_is_head")]
    assert not bad.passed and "password authentication failed" in (bad.description or "")

    instance = pipeline.instance
    searched = 0
    for name, result in runs.items():
        for entry in instance.all_logs(result.run_id):
            text = serialize_value(entry)
            assert SECRET not in text, f"{name}: password in event {entry.dagster_event_type}"
            searched += 1
        run = instance.get_run_by_id(result.run_id)
        assert SECRET not in serialize_value(run), f"{name}: password in the stored run"
        for event in result.all_events:
            assert SECRET not in serialize_value(event), f"{name}: password in {event}"
    assert searched > 50
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err
    home = Path(instance.root_directory)
    for path in home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"password stored in {path}"
