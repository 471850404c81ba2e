"""``upgrade`` (the upgrade_<env> job) and ``check-revisions`` (no environment touched).

Two revisions after the reset's baseline: the first adds a nullable column to ``parts``,
the second drops it again: squawk's ``ban-drop-column``, an error-level rule, on the
SQL the second really executes. The files live in the project copy only for the test.
"""

from __future__ import annotations

import pytest

from abparts_ops.cli import BAD_INPUT, FOUND, OK
from abparts_ops_tests.cli.conftest import VARIABLES, World, cli, read_revisions

ADD, DROP = "c1a0000000a1", "c1a0000000d2"
ADD_UP = 'op.add_column("parts", sa.Column("cli_note", sa.Text(), nullable=True))'
ADD_DOWN = 'op.drop_column("parts", "cli_note")'
DROP_UP = 'op.drop_column("parts", "cli_note")'
DROP_DOWN = 'op.add_column("parts", sa.Column("cli_note", sa.Text(), nullable=True))'


def _stamped(world: World, monkeypatch: pytest.MonkeyPatch, *names: str) -> dict[str, str]:
    urls = world.fresh(monkeypatch, names)
    for name in names:
        extra = ["--confirm", name] if name == "prod" else []
        code, done = cli("stamp", name, "--apply", *extra)
        assert code == OK, done
    return urls


def test_check_revisions_passes_a_nullable_column(world: World) -> None:
    with world.revision(ADD, up=ADD_UP, down_sql=ADD_DOWN, message="parts: a note"):
        code, document = cli("check-revisions", "--since", world.baseline)
    assert code == OK, document
    assert document["head"] == ADD and document["since"] == [world.baseline]
    [revision] = document["revisions"]
    assert revision["revision"] == ADD and revision["message"] == "parts: a note"
    assert revision["schema_change"]["changes"] == [
        {"change": "added", "kind": "column", "key": "parts.cli_note", "destructive": False,
         "detail": ""}
    ]
    assert all(f["level"] != "error" for f in revision["findings"])
    assert document["rehearsal"]["passed"] is True


def test_check_revisions_fails_a_dropped_column_and_names_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nothing reachable has run anything of the new history: every revision is checked
    for name in ("dev", "staging", "prod"):
        monkeypatch.setenv(VARIABLES[name], "postgresql://u:pw@127.0.0.1:1/x")
    with (
        world.revision(ADD, up=ADD_UP, down_sql=ADD_DOWN),
        world.revision(DROP, up=DROP_UP, down=ADD, down_sql=DROP_DOWN),
    ):
        code, document = cli("check-revisions")
    assert code == FOUND, document
    assert document["since"] == "base"
    assert [r["revision"] for r in document["revisions"]] == [world.baseline, ADD, DROP]
    drop = document["revisions"][-1]
    changes = drop["schema_change"]["changes"]
    assert [(c["change"], c["key"], c["destructive"]) for c in changes] == [
        ("removed", "parts.cli_note", True)
    ]
    errors = [f for f in drop["findings"] if f["level"] == "error"]
    assert [f["rule"] for f in errors] == ["ban-drop-column"]
    assert errors[0]["revision"] == DROP and errors[0]["file"].endswith(f"{DROP}_cli_test.py")
    assert document["error_findings"] == 1 and document["ok"] is False


def test_check_revisions_refuses_two_heads_and_a_history_that_does_not_build(
    world: World,
) -> None:
    with (
        world.revision(ADD, up=ADD_UP, down_sql=ADD_DOWN),
        world.revision(DROP, up=ADD_UP.replace("cli_note", "cli_other"), down_sql="pass"),
    ):
        code, document = cli("check-revisions", "--since", "base")
    assert code == FOUND and "2 heads" in document["error"]
    with world.revision(ADD, up='op.execute("SELECT * FROM no_such_table")'):
        code, document = cli("check-revisions", "--since", "base")
    assert code == FOUND and "does not build from empty" in document["error"]
    assert ADD in document["error"]
    code, document = cli("check-revisions", "--since", "0000deadbeef")
    assert code == BAD_INPUT


def test_check_revisions_defaults_to_what_no_environment_ran(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stamped(world, monkeypatch, "staging")
    monkeypatch.setenv(VARIABLES["dev"], "postgresql://u:pw@127.0.0.1:1/x")
    monkeypatch.setenv(VARIABLES["prod"], "postgresql://u:pw@127.0.0.1:1/x")
    with world.revision(ADD, up=ADD_UP, down_sql=ADD_DOWN):
        code, document = cli("check-revisions")
    assert code == OK, document
    assert document["since"] == [world.baseline]
    assert [r["revision"] for r in document["revisions"]] == [ADD]
    assert any(line.startswith("dev: not reachable") for line in document["read"])


def test_upgrade_prod_dry_run_refusal_block_and_acknowledged_apply(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = _stamped(world, monkeypatch, "prod")
    with (
        world.revision(ADD, up=ADD_UP, down_sql=ADD_DOWN),
        world.revision(DROP, up=DROP_UP, down=ADD, down_sql=DROP_DOWN),
    ):
        code, dry = cli("upgrade", "prod")  # a dry run: rehearsal and findings
        assert code == FOUND, dry  # the real run would be blocked
        assert dry["outcome"] == "dry_run" and dry["status"] == "SUCCESS"
        blocking = dry["record"]["blocking_rules"].split(", ")
        assert "ban-drop-column" in blocking
        assert read_revisions(urls["prod"]) == (world.baseline,)

        code, refused = cli("upgrade", "prod", "--apply")
        assert code == FOUND and refused["outcome"] == "refused"
        assert "confirm" in refused["message"]
        code, blocked = cli("upgrade", "prod", "--apply", "--confirm", "prod")
        assert code == FOUND and "ban-drop-column" in blocked["message"]
        assert read_revisions(urls["prod"]) == (world.baseline,)

        acknowledge = [word for rule in blocking for word in ("--acknowledge", rule)]
        code, done = cli("upgrade", "prod", "--apply", "--confirm", "prod", *acknowledge)
        assert code == OK, done
        assert done["outcome"] == "upgraded" and done["record"]["launched_by"] == "cli-tester"
        assert read_revisions(urls["prod"]) == (DROP,)
        run = world.run(done["run_id"])
        config = run.run_config["ops"]["prod__alembic_upgrade"]["config"]
        assert config["confirm"] == "prod" and set(config["acknowledge"]) == set(blocking)
        assert run.tags["abparts_ops/command"].startswith("abparts-ops upgrade prod --apply")
