"""The ``abparts-ops`` command line: doctor and drift, with exit codes CI can use."""

from __future__ import annotations

import pytest

from abparts_ops.cli import BAD_INPUT, FOUND, OK, main
from abparts_ops.core.settings import CONFIG_ENV
from abparts_ops.embedded.demo import introduce_drift
from abparts_ops_tests.defs.environments.conftest import Pipeline


@pytest.fixture
def configured(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fresh staging/prod, and ABPARTS_OPS_CONFIG pointing at the package's config."""
    monkeypatch.setenv(CONFIG_ENV, str(pipeline.layout.root / "abparts_ops_envtest.yaml"))
    return pipeline.fresh_environments(monkeypatch)


def test_doctor_reports_every_environment_reachable(configured, capsys):
    assert main(["doctor"]) == OK
    out = capsys.readouterr().out
    for env in ("dev", "staging", "prod"):
        assert f"✓ {env}: reachable" in out


def test_doctor_reports_an_unreachable_environment(configured, monkeypatch, capsys):
    monkeypatch.setenv("ABPT_ENVTEST_PROD_URL", "postgresql://u:s3cretpw@127.0.0.1:1/x")
    assert main(["doctor"]) == FOUND
    out = capsys.readouterr().out
    assert "✗ prod:" in out
    assert "s3cretpw" not in out


def test_drift_exit_codes_follow_the_environment(pipeline: Pipeline, configured, capsys):
    """The state from the one reference: awaiting its stamp, then in sync, then drift."""
    assert main(["drift", "staging"]) == FOUND  # at an archived revision: awaiting stamp
    out = capsys.readouterr().out
    assert "staging: awaiting_stamp" in out and "stamp_staging" in out
    assert main(["drift", "prod"]) == FOUND
    assert "is in no history" in capsys.readouterr().out
    result = pipeline.stamp("staging", dry_run=False)
    assert result.success
    assert main(["drift", "staging"]) == OK
    out = capsys.readouterr().out
    assert f"in sync: at the head {pipeline.baseline_revision}, schema matches it" in out
    introduce_drift(configured["staging"], "index")
    assert main(["drift", "staging"]) == FOUND
    out = capsys.readouterr().out
    assert "staging: schema_drift" in out and "drift_demo_idx" in out


def test_bad_input_exits_2(configured, monkeypatch, tmp_path, capsys):
    assert main(["drift", "nowhere"]) == BAD_INPUT
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: dev\nenvironments: {dev: {url: postgresql://x}}\n")
    monkeypatch.setenv(CONFIG_ENV, str(bad))
    assert main(["doctor"]) == BAD_INPUT
    assert "URLs never go in the file" in capsys.readouterr().err
