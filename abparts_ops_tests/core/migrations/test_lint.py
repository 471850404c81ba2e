"""squawk on the pending revisions' offline SQL: findings, attribution, exclusions, and
the rule names a run or the configuration gives, checked against the installed squawk."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from abparts_ops.core.errors import ConfigError, MigrationError, UpgradeRefused
from abparts_ops.core.migrations.lint import (
    DEFAULT_ERROR_RULES,
    OFFLINE_SQL_RULE,
    PROJECT_RULES,
    LintExclusion,
    check_rule_names,
    closest_rules,
    known_rules,
    lint_pending,
    render_offline_sql,
    squawk_rules,
    unknown_rules,
)
from abparts_ops.core.migrations.project import load_project
from abparts_ops.core.migrations.upgrade import UpgradePolicy
from abparts_ops_tests.core.migrations.projects import Rev, write_project

REVS = [
    Rev("r001", None, "op.create_table('parts', sa.Column('id', sa.BigInteger, "
        "primary_key=True), sa.Column('notes', sa.Text))"),
    Rev("r002", "r001", "op.add_column('parts', sa.Column('colour', sa.Text))"),
    Rev("r003", "r002", "op.drop_column('parts', 'notes')"),
]


def project_of(tmp_path: Path, revs: list[Rev]):
    """Load a project written under ``tmp_path``."""
    return load_project(ini_path=write_project(tmp_path / "p", revs))


def test_findings_name_rule_level_revision_and_statement(tmp_path: Path) -> None:
    project = project_of(tmp_path, REVS)
    report = lint_pending(project, project.script(), ("r001",), "r003",
                          preamble=["SET lock_timeout = '5000ms';",
                                    "SET statement_timeout = '900000ms';"])
    assert [r.revision for r in report.revisions] == ["r002", "r003"]
    by_rule = {f.rule: f for f in report.findings}
    drop = by_rule["ban-drop-column"]
    assert drop.level == "error" and drop.squawk_level == "Warning"
    assert drop.revision == "r003" and drop.statement == "ALTER TABLE parts DROP COLUMN notes;"
    piece = report.revisions[1]
    assert piece.sql.splitlines()[drop.line - 1].startswith("ALTER TABLE parts DROP COLUMN")
    assert "require-lock-timeout" not in by_rule  # the preamble sets it, as the apply does
    assert [f.rule for f in report.blocking([])] == ["ban-drop-column"]
    assert report.blocking(["ban-drop-column"]) == ()
    assert "| error | `ban-drop-column` | r003 |" in report.to_markdown()


def test_excluded_rules_are_not_reported(tmp_path: Path) -> None:
    project = project_of(tmp_path, REVS)
    report = lint_pending(project, project.script(), ("r001",), "r003",
                          excluded=[LintExclusion("ban-drop-column", "reviewed")])
    assert "ban-drop-column" not in {f.rule for f in report.findings}
    assert report.excluded[0].reason == "reviewed"


def test_a_revision_that_reads_the_database_cannot_be_rendered_offline(tmp_path: Path) -> None:
    revs = REVS[:2] + [Rev(
        "r003", "r002",
        "rows = op.get_bind().execute(sa.text('SELECT 1')).fetchall()\n"
        "op.add_column('parts', sa.Column('n', sa.Text))",
    )]
    project = project_of(tmp_path, revs)
    text, pieces, failure = render_offline_sql(project, project.script(), ("r001",), "r003")
    assert "ADD COLUMN colour" in text
    assert failure is not None and failure.revision == "r003"
    report = lint_pending(project, project.script(), ("r001",), "r003")
    offline = [f for f in report.findings if f.rule == OFFLINE_SQL_RULE]
    assert offline and offline[0].level == "error" and offline[0].revision == "r003"


def test_excluding_our_own_rule_is_not_passed_to_squawk(tmp_path: Path) -> None:
    """squawk does not know offline-sql-unavailable: excluding it must not make it fail."""
    revs = REVS[:2] + [Rev("r003", "r002", "op.get_bind().execute(sa.text('SELECT 1'))")]
    project = project_of(tmp_path, revs)
    report = lint_pending(project, project.script(), ("r001",), "r003",
                          excluded=[LintExclusion(OFFLINE_SQL_RULE, "rehearsal is enough"),
                                    LintExclusion("prefer-robust-stmts", "one transaction")])
    rules = {f.rule for f in report.findings}
    assert OFFLINE_SQL_RULE not in rules and "prefer-robust-stmts" not in rules


# ------------------------------------------------------------------------ rule names

ACK = "prod: run config acknowledge"
FIX = "use the names squawk reports (https://squawkhq.com/docs/rules) or offline-sql-unavailable."


def test_known_rules_are_read_from_the_installed_squawk() -> None:
    known = known_rules()
    assert {"ban-drop-column", "prefer-robust-stmts", "renaming-column",
            "require-timeout-settings", "ban-drop-trigger"} <= known
    assert OFFLINE_SQL_RULE in known and OFFLINE_SQL_RULE not in squawk_rules()
    assert len(squawk_rules()) > 40
    assert unknown_rules(sorted(known)) == ()  # squawk accepts every name it is said to know
    assert squawk_rules() is squawk_rules()  # cached per binary


def test_every_default_error_rule_and_default_exclusion_is_known() -> None:
    """A squawk upgrade that drops or renames a rule the defaults name is caught here."""
    defaults = [*DEFAULT_ERROR_RULES, *(e.rule for e in UpgradePolicy().exclude)]
    assert set(defaults) <= known_rules()
    assert unknown_rules(defaults) == ()


def test_an_unknown_acknowledged_rule_is_refused_with_the_closest_names() -> None:
    with pytest.raises(UpgradeRefused) as caught:
        check_rule_names(["ban-drop-column", "no-such-rule", "ban-drop-colum"], where=ACK)
    assert str(caught.value) == (
        f"{ACK}: unknown lint rules `no-such-rule`, `ban-drop-colum` (did you mean "
        f"`ban-drop-column`?): {FIX}"
    )
    with pytest.raises(UpgradeRefused) as caught:
        check_rule_names(["offline-sql-unavailble", "BAN-DROP-COLUMN"], where=ACK)
    assert str(caught.value) == (
        f"{ACK}: unknown lint rules `offline-sql-unavailble` (did you mean "
        f"`offline-sql-unavailable`?), `BAN-DROP-COLUMN` (did you mean `ban-drop-column`?): {FIX}"
    )
    assert "\n" not in str(caught.value)


def test_known_names_pass_and_the_error_type_is_the_callers() -> None:
    check_rule_names([], where=ACK)
    check_rule_names(["ban-drop-column", "renaming-column", OFFLINE_SQL_RULE], where=ACK)
    check_rule_names(["prefer-timestamptz"], where=ACK)  # an alias squawk accepts
    with pytest.raises(ConfigError, match=r"^f.yaml: x: unknown lint rule `renaming-colunm` "
                                          r"\(did you mean `renaming-column`\?\)"):
        check_rule_names(["renaming-colunm"], where="f.yaml: x", error=ConfigError)
    assert closest_rules("ban-drop")[:1] and all(
        name.startswith("ban-drop-") for name in closest_rules("ban-drop")
    )
    assert closest_rules("something-else-entirely") == []


def test_our_own_rules_need_no_squawk(tmp_path: Path) -> None:
    missing = tmp_path / "no-squawk-here"
    assert unknown_rules(sorted(PROJECT_RULES), executable=missing) == ()
    check_rule_names([OFFLINE_SQL_RULE], where=ACK, executable=missing)
    with pytest.raises(MigrationError, match="cannot read"):
        check_rule_names(["ban-drop-column"], where=ACK, executable=missing)


def fake_squawk(path: Path, known: list[str]) -> Path:
    """A stand-in squawk that knows ``known``: the names are in its text, as in the real
    binary, and it reports the others of a ``-- squawk-ignore`` file as unknown."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"KNOWN = {'|'.join(known)!r}.split('|')\n"
        "out = []\n"
        "for i, line in enumerate(open(sys.argv[-1]).read().splitlines()):\n"
        "    if line.startswith('-- squawk-ignore '):\n"
        "        name = line.split(' ', 2)[2]\n"
        "        if name not in KNOWN:\n"
        "            out.append({'line': i, 'message': 'unknown name ' + name,\n"
        "                        'rule_name': 'unused-' + 'ignore'})\n"
        "print(json.dumps(out))\n"
    )
    path.chmod(0o755)
    return path


def test_the_list_is_read_from_the_binary_and_cached_per_path_and_mtime(tmp_path: Path) -> None:
    squawk = fake_squawk(tmp_path / "squawk", ["ban-fake-rule", "prefer-fake-style"])
    assert squawk_rules(squawk) == {"ban-fake-rule", "prefer-fake-style"}
    assert known_rules(squawk) == {"ban-fake-rule", "prefer-fake-style", OFFLINE_SQL_RULE}
    with pytest.raises(UpgradeRefused, match=r"`ban-fake-rul` \(did you mean `ban-fake-rule`"):
        check_rule_names(["ban-fake-rul"], where=ACK, executable=squawk)
    stat = squawk.stat()
    fake_squawk(squawk, ["ban-fake-rule", "require-fake-form"])  # upgraded, same size
    os.utime(squawk, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert squawk_rules(squawk) == {"ban-fake-rule", "require-fake-form"}
    assert unknown_rules(["prefer-fake-style", "require-fake-form"], executable=squawk) == (
        "prefer-fake-style",
    )


def test_a_squawk_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    """If squawk stops reporting unknown names, the check must not pass everything."""
    silent = tmp_path / "squawk"
    silent.write_text("#!/bin/sh\necho '[]'\n")
    silent.chmod(0o755)
    with pytest.raises(MigrationError, match="cannot tell which rule names .* knows"):
        unknown_rules(["ban-drop-column"], executable=silent)
