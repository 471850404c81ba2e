"""The configuration file: every problem reported at once, one line each, key and fix.

No database needed: these tests only write YAML files and folders into ``tmp_path``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from abparts_ops.core import settings as settings_module
from abparts_ops.core.errors import ConfigError, MigrationError
from abparts_ops.core.rollout import lint
from abparts_ops.core.settings import (
    CONFIG_ENV,
    EnvironmentSettings,
    load_settings,
    parse_settings,
    resolve_url_env,
)

SECRET = "Pw-in-the-file-4471"
VARIABLES = {
    "dev": "ABPT_SETTINGS_DEV_URL",
    "staging": "ABPT_SETTINGS_STAGING_URL",
    "prod": "ABPT_SETTINGS_PROD_URL",
    "scratch": "ABPT_SETTINGS_SCRATCH_URL",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with ``backend/alembic.ini`` and ``backend/app``; every variable set."""
    backend = tmp_path / "backend"
    (backend / "alembic" / "versions").mkdir(parents=True)
    (backend / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/alembic\n")
    (backend / "app").mkdir()
    for variable in VARIABLES.values():
        monkeypatch.setenv(variable, "postgresql://ops:pw@db.internal:5432/abparts")
    return tmp_path


def good_config() -> dict[str, Any]:
    """The issue's example configuration (as parsed YAML)."""
    return {
        "alembic": {
            "config": "backend/alembic.ini",
            "models": "app.models:Base",
            "sys_path": ["backend"],
        },
        "source": "dev",
        "exclude": ["knowledge_documents", "document_chunks"],
        "scratch": {"url_env": VARIABLES["scratch"]},
        "environments": {
            "dev": {"url_env": VARIABLES["dev"]},
            "staging": {"url_env": VARIABLES["staging"]},
            "prod": {"url_env": VARIABLES["prod"], "protected": True},
        },
    }


def write(project: Path, data: Any, name: str = "abparts_ops.yaml") -> Path:
    """Write ``data`` as YAML next to the project and return the file's path."""
    path = project / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems(project: Path, data: Any) -> list[str]:
    """The lines of the ConfigError that loading ``data`` raises."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(project, data))
    lines = str(caught.value).splitlines()
    assert all(line.startswith("abparts_ops.yaml: ") for line in lines), lines
    return lines


def test_good_configuration(project: Path) -> None:
    """The issue's example loads; paths are resolved relative to the file."""
    settings = load_settings(write(project, good_config()))
    assert settings.source == "dev"
    assert [e.name for e in settings.targets] == ["staging", "prod"]
    assert settings.environments["prod"].protected
    assert not settings.environments["staging"].protected
    assert settings.alembic.ini_path == (project / "backend" / "alembic.ini").resolve()
    assert settings.alembic.sys_path == ((project / "backend").resolve(),)
    assert settings.exclude == ("knowledge_documents", "document_chunks")
    assert settings.scratch_url_env == VARIABLES["scratch"]
    assert settings.environments["staging"].url() == "postgresql://ops:pw@db.internal:5432/abparts"


def test_any_number_of_environments(project: Path) -> None:
    """Environments are not limited to dev/staging/prod; they keep the file's order."""
    data = good_config()
    data["environments"] = {
        f"site_{i}": {"url_env": VARIABLES["dev"] if i == 0 else f"ABPT_SITE_{i}_URL"}
        for i in range(12)
    }
    data["source"] = "site_0"
    for i in range(1, 12):
        os.environ.setdefault(f"ABPT_SITE_{i}_URL", "postgresql://x@h/db")
    try:
        settings = load_settings(write(project, data))
    finally:
        for i in range(1, 12):
            os.environ.pop(f"ABPT_SITE_{i}_URL", None)
    assert [e.name for e in settings.targets] == [f"site_{i}" for i in range(1, 12)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d.update(enviroments={}),
            "abparts_ops.yaml: enviroments: unknown key (did you mean `environments`? "
            "allowed: alembic, compare_privileges, environments, exclude, probe, reference, "
            "schema, scratch, source, upgrade); "
            "remove or rename it.",
        ),
        (
            lambda d: d["environments"]["prod"].update(protect=True),
            "abparts_ops.yaml: environments.prod.protect: unknown key (did you mean "
            "`protected`? allowed: block_on_lint_errors, protected, schema, url_env); remove or "
            "rename it.",
        ),
        (
            lambda d: d["alembic"].update(script_locaton="x"),
            "abparts_ops.yaml: alembic.script_locaton: unknown key (did you mean "
            "`script_location`? allowed: config, models, script_location, sys_path, "
            "version_table); remove or rename it.",
        ),
        (
            lambda d: d.update(source="qa"),
            "abparts_ops.yaml: source: 'qa' is not among the environments (dev, staging, "
            "prod): name one of them, or add it under `environments`.",
        ),
        (
            lambda d: d.pop("source"),
            "abparts_ops.yaml: source: missing: name the environment whose schema is the "
            "reference.",
        ),
        (
            lambda d: d.update(exclude=["knowledge_[documents"]),
            "abparts_ops.yaml: exclude: pattern 'knowledge_[documents' has an unclosed '[' "
            "(close it with ']').",
        ),
        (
            lambda d: d.update(exclude=[""]),
            "abparts_ops.yaml: exclude: an empty pattern is not allowed (remove it from the list).",
        ),
        (
            lambda d: d["alembic"].update(config="nowhere/alembic.ini"),
            "abparts_ops.yaml: alembic.config: no file at {root}/nowhere/alembic.ini (fix the "
            "path).",
        ),
        (
            lambda d: d["alembic"].update(sys_path=["backend", "missing_folder"]),
            "abparts_ops.yaml: alembic.sys_path: no folder at {root}/missing_folder (fix or "
            "remove it).",
        ),
        (
            lambda d: d["environments"]["prod"].update(url=f"postgresql://u:{SECRET}@h/db"),
            "abparts_ops.yaml: environments.prod.url: URLs never go in the file: use "
            "`url_env: SOME_VARIABLE` and export it.",
        ),
        (
            lambda d: d["environments"]["staging"].update(url_env=f"postgresql://u:{SECRET}@h/d"),
            "abparts_ops.yaml: environments.staging.url_env: holds a URL, not a variable "
            "name: export the URL in a variable and name the variable here (URLs never go "
            "in the file).",
        ),
        (
            lambda d: d["scratch"].update(url=f"postgresql://u:{SECRET}@h/db"),
            "abparts_ops.yaml: scratch.url: URLs never go in the file: use `url_env: "
            "SOME_VARIABLE` and export it.",
        ),
        (
            lambda d: d["environments"]["staging"].pop("url_env"),
            "abparts_ops.yaml: environments.staging.url_env: missing: name the environment "
            "variable with the URL.",
        ),
        (
            lambda d: d["environments"]["prod"].update(url_env=VARIABLES["staging"]),
            f"abparts_ops.yaml: environments.prod.url_env: {VARIABLES['staging']} is also the "
            "variable of staging: each environment needs its own variable (a stamp must never "
            "hit the wrong one).",
        ),
        (
            lambda d: d["environments"]["prod"].update(protected="yes"),
            "abparts_ops.yaml: environments.prod.protected: must be true or false.",
        ),
        (
            lambda d: d["environments"].update({"Prod-EU": {"url_env": "X"}}),
            "abparts_ops.yaml: environments.Prod-EU: names are lower-case letters, digits "
            "and _ (start with a letter).",
        ),
        (
            lambda d: d["environments"].update(qa="ABPT_QA_URL"),
            "abparts_ops.yaml: environments.qa: must be a mapping such as {url_env: "
            "SOME_VARIABLE}, got str.",
        ),
        (
            lambda d: d["alembic"].update(models="app/models.py"),
            "abparts_ops.yaml: alembic.models: must look like `package.module:Base` (import path).",
        ),
        (
            lambda d: d.update(alembic={}),
            "abparts_ops.yaml: alembic: set `config` (path to alembic.ini) or `script_location`.",
        ),
    ],
    ids=lambda value: "" if callable(value) else value.split(": ")[1],
)
def test_each_problem_is_one_line_naming_the_key_and_fix(
    project: Path, change: Any, expected: str
) -> None:
    """Each kind of mistake: exactly one line, naming the key and what to do."""
    data = good_config()
    change(data)
    lines = problems(project, data)
    assert lines == [expected.replace("{root}", str(project.resolve()))]
    assert SECRET not in "\n".join(lines)


def test_missing_and_empty_variables(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable and a variable set to an empty string: one line each."""
    monkeypatch.delenv(VARIABLES["staging"])
    monkeypatch.setenv(VARIABLES["prod"], "")
    monkeypatch.setenv(VARIABLES["scratch"], "   ")
    assert problems(project, good_config()) == [
        f"abparts_ops.yaml: environments.staging.url_env: environment variable "
        f"{VARIABLES['staging']} is not set (export it).",
        f"abparts_ops.yaml: environments.prod.url_env: environment variable "
        f"{VARIABLES['prod']} is empty (set it to a URL).",
        f"abparts_ops.yaml: scratch.url_env: environment variable {VARIABLES['scratch']} is "
        "empty (set it to a URL).",
    ]
    # The code location still loads without them (checked when a run uses them) ...
    settings = load_settings(write(project, good_config()), check_env=False)
    # ... and then the environment names its own variable.
    with pytest.raises(ConfigError) as unset:
        settings.environments["staging"].url()
    assert str(unset.value) == (
        f"environment 'staging': environment variable {VARIABLES['staging']} is not set "
        f"(export {VARIABLES['staging']}=postgresql://user:password@host:5432/dbname)."
    )
    with pytest.raises(ConfigError, match=f"{VARIABLES['prod']} is empty"):
        settings.environments["prod"].url()
    with pytest.raises(ConfigError, match="scratch: environment variable .* is empty"):
        settings.scratch_url()


def test_all_problems_reported_together(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many mistakes at once: every one of them, in one error, one line each."""
    monkeypatch.delenv(VARIABLES["dev"])
    data = good_config()
    data["colour"] = "blue"
    data["source"] = "qa"
    data["exclude"] = ["ok_*", "bad_[x"]
    data["alembic"]["config"] = "missing.ini"
    data["environments"]["prod"]["url"] = f"postgresql://ops:{SECRET}@db/prod"
    lines = problems(project, data)
    keys = [line.split(": ")[1] for line in lines]
    assert sorted(keys) == sorted(
        [
            "colour",
            "alembic.config",
            "environments.prod.url",
            "environments.dev.url_env",
            "source",
            "exclude",
        ]
    ), lines
    assert SECRET not in "\n".join(lines)


def test_unreadable_paths(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An ini file this process may not read, and a config path that is not a file."""
    ini = (project / "backend" / "alembic.ini").resolve()
    real_access = os.access
    monkeypatch.setattr(
        settings_module.os,
        "access",
        lambda path, mode: False if Path(path) == ini else real_access(path, mode),
    )
    assert problems(project, good_config()) == [
        f"abparts_ops.yaml: alembic.config: {ini} is not readable (fix its permissions)."
    ]
    with pytest.raises(
        ConfigError, match=r"no configuration file there \(fix ABPARTS_OPS_CONFIG\)"
    ):
        load_settings(tmp_path)


def test_file_level_errors(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken YAML, a file that is not a mapping, and no ``ABPARTS_OPS_CONFIG``."""
    broken = project / "broken.yaml"
    broken.write_text("source: dev\nenvironments: [\n")
    with pytest.raises(ConfigError, match=r"^broken.yaml: not valid YAML at line \d+"):
        load_settings(broken)
    assert problems(project, ["a", "list"]) == [
        "abparts_ops.yaml: <file>: must be a YAML mapping (see README: Configuration)."
    ]
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"^{CONFIG_ENV} is not set"):
        load_settings()
    monkeypatch.setenv(CONFIG_ENV, str(write(project, good_config())))
    assert load_settings().source == "dev"


def test_script_location_instead_of_ini(project: Path) -> None:
    """``script_location`` works instead of ``config``; both at once is one problem."""
    data = good_config()
    data["alembic"] = {"script_location": "backend/alembic"}
    settings = load_settings(write(project, data))
    assert settings.alembic.script_location == (project / "backend" / "alembic").resolve()
    data["alembic"]["config"] = "backend/alembic.ini"
    assert problems(project, data) == [
        "abparts_ops.yaml: alembic: give either `config` or `script_location`, not both."
    ]


def test_resolve_url_env_never_echoes_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL is read when needed, stripped, and never part of an error."""
    monkeypatch.setenv("ABPT_SETTINGS_X", f"  postgresql://u:{SECRET}@h/db  ")
    assert resolve_url_env("ABPT_SETTINGS_X", "x") == f"postgresql://u:{SECRET}@h/db"
    env = EnvironmentSettings.named("x", url_env="ABPT_SETTINGS_MISSING")
    with pytest.raises(ConfigError) as caught:
        env.url()
    assert SECRET not in str(caught.value)


def test_parse_settings_without_env_check(tmp_path: Path) -> None:
    """``check_env=False`` validates the file only (the Dagster code location uses it)."""
    (tmp_path / "alembic").mkdir()
    settings = parse_settings(
        {
            "alembic": {"script_location": "alembic"},
            "source": "dev",
            "environments": {"dev": {"url_env": "ABPT_NEVER_SET_URL"}},
        },
        tmp_path / "x.yaml",
        check_env=False,
    )
    assert settings.targets == []


def test_duplicate_key_is_refused_with_its_line(project: Path) -> None:
    """`prod:` twice, the second without `protected`: refused, naming both lines."""
    text = (
        "alembic: {config: backend/alembic.ini}\n"
        "source: dev\n"
        "environments:\n"
        f"  dev: {{url_env: {VARIABLES['dev']}}}\n"
        f"  prod: {{url_env: {VARIABLES['prod']}, protected: true}}\n"
        f"  staging: {{url_env: {VARIABLES['staging']}}}\n"
        f"  prod: {{url_env: {VARIABLES['prod']}}}\n"
    )
    path = project / "abparts_ops.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == (
        "abparts_ops.yaml: line 7: key `prod` is given twice (first at line 5); YAML would "
        "silently keep only the last one: merge them into one."
    )
    path.write_text("source: dev\nsource: qa\n" + text.split("\n", 2)[2])
    with pytest.raises(ConfigError, match=r"^abparts_ops.yaml: line 2: key `source`"):
        load_settings(path)


def test_new_keys_and_their_defaults(project: Path) -> None:
    """compare_privileges, probe, upgrade (squawk exclusions), block_on_lint_errors."""
    settings = load_settings(write(project, good_config()))
    assert settings.compare_privileges is False
    assert settings.probe.connect_timeout_s == 3
    assert settings.upgrade.lock_timeout_s == 5 and settings.upgrade.statement_timeout_s == 900
    assert settings.upgrade.squawk.exclude == ()
    assert settings.environments["prod"].block_on_lint_errors is True  # protected
    assert settings.environments["staging"].block_on_lint_errors is False
    data = good_config()
    data["compare_privileges"] = True
    data["probe"] = {"connect_timeout_s": 1.5}
    data["upgrade"] = {
        "lock_timeout_s": 2,
        "squawk": {"exclude": [{"rule": "prefer-robust-stmts", "reason": "one transaction"}]},
    }
    data["environments"]["staging"]["block_on_lint_errors"] = True
    data["environments"]["prod"]["block_on_lint_errors"] = False
    settings = load_settings(write(project, data))
    assert settings.compare_privileges and settings.probe.connect_timeout_s == 1.5
    assert settings.upgrade.lock_timeout_s == 2 and settings.upgrade.statement_timeout_s == 900
    (excluded,) = settings.upgrade.squawk.exclude
    assert (excluded.rule, excluded.reason) == ("prefer-robust-stmts", "one transaction")
    assert settings.environments["staging"].block_on_lint_errors is True
    assert settings.environments["prod"].block_on_lint_errors is False


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d.update(upgrade={"squawk": {"exclude": [{"rule": "prefer-robust-stmts"}]}}),
            "abparts_ops.yaml: upgrade.squawk.exclude.reason: missing: say why the rule is left "
            "out (a reason is required).",
        ),
        (
            lambda d: d.update(upgrade={"squawk": {"exclude": [
                {"rule": "ban-drop-column", "reason": " "}]}}),
            "abparts_ops.yaml: upgrade.squawk.exclude.reason: give the reason for leaving the "
            "rule out.",
        ),
        (
            lambda d: d.update(upgrade={"squawk": {"exclude": [
                {"rule": "prefer-robust-stmt", "reason": "one transaction"}]}}),
            "abparts_ops.yaml: upgrade.squawk.exclude.rule: unknown lint rule "
            "`prefer-robust-stmt` (did you mean `prefer-robust-stmts`?): use the names squawk "
            "reports (https://squawkhq.com/docs/rules) or data-loss, "
            "offline-sql-unavailable.",
        ),
        (
            lambda d: d.update(upgrade={"lock_timeout": 3}),
            "abparts_ops.yaml: upgrade.lock_timeout: unknown key (did you mean "
            "`lock_timeout_s`? allowed: lock_timeout_s, rehearsal, squawk, "
            "statement_timeout_s); remove or rename it.",
        ),
        (
            lambda d: d.update(probe={"connect_timeout_s": 0}),
            "abparts_ops.yaml: probe.connect_timeout_s: must be greater than 0.",
        ),
        (
            lambda d: d.update(compare_privileges="no"),
            "abparts_ops.yaml: compare_privileges: must be true or false.",
        ),
        (
            lambda d: d["environments"]["prod"].update(block_on_lint_errors=1),
            "abparts_ops.yaml: environments.prod.block_on_lint_errors: must be true or false.",
        ),
    ],
    ids=lambda value: "" if callable(value) else value.split(": ")[1],
)
def test_new_keys_problems(project: Path, change: Any, expected: str) -> None:
    """The new keys' mistakes: one line each, key and fix, like the others."""
    data = good_config()
    change(data)
    assert problems(project, data) == [expected]


def test_squawk_exclusions_are_checked_when_the_file_loads(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every misspelt rule is named with the closest names, beside the file's other
    problems; squawk's aliases and our own rule are accepted; without squawk (nothing can
    tell) the names are kept and the lint reports the missing squawk itself."""
    data = good_config()
    data["upgrade"] = {"squawk": {"exclude": [
        {"rule": "ban-drop-colum", "reason": "reviewed"},
        {"rule": "prefer-robust-stmts", "reason": "one transaction"},
        {"rule": "no-such-rule", "reason": "typo"},
    ]}}
    data["probe"] = {"timeout_s": 0}
    lines = problems(project, data)
    assert lines[0] == "abparts_ops.yaml: probe.timeout_s: must be greater than 0."
    assert lines[1].startswith(
        "abparts_ops.yaml: upgrade.squawk.exclude.rule: unknown lint rule `ban-drop-colum` "
        "(did you mean `ban-drop-column`?)"
    )
    assert lines[2].startswith(
        "abparts_ops.yaml: upgrade.squawk.exclude.rule: unknown lint rule `no-such-rule`: "
    )
    assert len(lines) == 3

    data = good_config()
    data["upgrade"] = {"squawk": {"exclude": [
        {"rule": "offline-sql-unavailable", "reason": "the rehearsal is enough"},
        {"rule": "prefer-timestamptz", "reason": "an alias squawk accepts"},
    ]}}
    settings = load_settings(write(project, data))
    assert [e.rule for e in settings.upgrade.squawk.exclude] == [
        "offline-sql-unavailable", "prefer-timestamptz"
    ]

    def no_squawk() -> Path:
        raise MigrationError("lint: the squawk binary is not installed")

    monkeypatch.setattr(lint, "squawk_executable", no_squawk)
    data["upgrade"]["squawk"]["exclude"].append({"rule": "not-checkable", "reason": "r"})
    settings = load_settings(write(project, data))
    assert settings.upgrade.squawk.exclude[-1].rule == "not-checkable"
