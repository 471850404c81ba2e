"""A bad configuration under a ``dagster`` command: the line that matters comes first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from abparts_ops.core.settings import CONFIG_ENV

REPO = Path(__file__).resolve().parents[3]


def test_dagster_command_prints_the_config_error_before_the_traceback(tmp_path: Path) -> None:
    """`dagster asset materialize` on a file with `dev` twice: its line, then the trace."""
    config = tmp_path / "abparts_ops.yaml"
    config.write_text(
        "source: dev\nenvironments:\n  dev: {url_env: A_URL}\n  dev: {url_env: B_URL}\n"
    )
    env = {**os.environ, CONFIG_ENV: str(config), "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
         "abparts_ops.definitions", "--select", "source_schema"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    header = "abparts_ops: configuration error:"
    assert header in lines, result.stderr[:3000]
    first = lines.index(header)
    assert lines[first + 1] == (
        "abparts_ops.yaml: line 4: key `dev` is given twice (first at line 3); YAML would "
        "silently keep only the last one: merge them into one."
    )
    traceback_lines = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    assert traceback_lines and min(traceback_lines) > first, result.stderr[:3000]
