"""The pre-commit hook of ``.pre-commit-hooks.yaml``, tried for real with ``pre-commit try-repo``.

A small Alembic project of its own in a fresh git repository (its ``env.py`` raises:
nothing may run it), a configuration whose only environment is unreachable (so every
revision is checked from empty) and the test server as the scratch server. The hook must
fail on a revision that drops a column, naming the rule and the revision, and pass
without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from abparts_ops_tests.cli.conftest import REPO
from abparts_ops_tests.core.history.projects import Rev, table, write_project

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True,
    )


def _try_repo(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    _git(project, "add", "-A")
    return subprocess.run(
        [str(PRE_COMMIT), "try-repo", str(REPO), "check-revisions", "--all-files",
         "--verbose"],
        cwd=project, capture_output=True, text=True, timeout=600, env=env,
    )


@pytest.mark.skipif(not PRE_COMMIT.exists(), reason="pre-commit is in the dev extras")
def test_the_hook_fails_a_dropped_column_and_passes_without_it(
    admin_url: str, tmp_path: Path
) -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert [h["id"] for h in hooks] == ["check-revisions"]
    project = tmp_path / "app"
    project.mkdir()
    up, down = table("parts")
    write_project(project, [Rev("r001", None, up, down, filename="r001_parts.py")])
    (project / "abparts_ops.yaml").write_text(
        "alembic: {config: alembic.ini}\n"
        "source: dev\n"
        "scratch: {url_env: ABPT_HOOK_SCRATCH_URL}\n"
        "environments:\n  dev: {url_env: ABPT_HOOK_DEV_URL}\n",
        encoding="utf-8",
    )
    _git(project, "init", "-q")
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ABPARTS_", "ABPT_", "DAGSTER_", "PRE_COMMIT"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        ABPARTS_OPS_CONFIG=str(project / "abparts_ops.yaml"),
        ABPARTS_OPS_CACHE=str(tmp_path / "cache"),
        ABPT_HOOK_SCRATCH_URL=admin_url,
    )
    passed = _try_repo(project, env)
    assert passed.returncode == 0, passed.stdout[-3000:] + passed.stderr[-3000:]
    assert "dev: not reachable" in passed.stdout and "no error-level finding" in passed.stdout

    versions = project / "migrations" / "versions"
    (versions / "r002_drop_label.py").write_text(
        Rev("r002", "r001", "op.drop_column('parts', 'label')",
            "op.add_column('parts', sa.Column('label', sa.Text))").render(),
        encoding="utf-8",
    )
    failed = _try_repo(project, env)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    out = failed.stdout
    assert "r002 (r002_drop_label.py): 0 added, 1 removed" in out
    assert "ban-drop-column" in out and "1 error-level finding(s)" in out
    assert admin_url.split("@")[0].split(":")[-1] not in out  # no password in the output
    shutil.rmtree(tmp_path / "pre-commit-home", ignore_errors=True)


def test_the_ci_workflow_example_runs_the_command_with_a_scratch_server() -> None:
    """docs/ci/revisions.yml: valid YAML, a PostgreSQL service, and the step README shows."""
    workflow = yaml.safe_load((REPO / "docs" / "ci" / "revisions.yml").read_text("utf-8"))
    [job] = workflow["jobs"].values()
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    [step] = [s for s in job["steps"] if s.get("run") == "abparts-ops check-revisions"]
    assert {"ABPARTS_OPS_CONFIG", "ABPARTS_SCRATCH_URL"} <= set(step["env"])
    assert step["env"]["ABPARTS_SCRATCH_URL"].endswith("@127.0.0.1:5432/postgres")
    readme = (REPO / "README.md").read_text("utf-8")
    assert "docs/ci/revisions.yml" in readme
    assert "\n  - run: abparts-ops check-revisions\n" in readme
