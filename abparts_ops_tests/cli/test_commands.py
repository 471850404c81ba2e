"""The commands against the demo: real runs on a real instance, JSON, exit codes, refusals.

``reset``, ``stamp`` and ``verify`` launch the pipeline's own jobs on the instance of
``DAGSTER_HOME``; each run must be there afterwards with its tags (who launched it),
and what the command prints must be what the run recorded. ``drift`` reads through the
one reference. Every document is parsed from the whole of stdout: nothing else may be
printed there (Dagster's events go to the log file).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from abparts_ops.cli import BAD_INPUT, FOUND, OK, build_parser, main
from abparts_ops.embedded.demo import DEMO_OLD_HEAD, DEMO_UNKNOWN_REVISION, introduce_drift
from abparts_ops_tests.cli.conftest import (
    SPEC_KEYS,
    USER,
    VARIABLES,
    World,
    cli,
    read_revisions,
)

COMMANDS = ("reset", "stamp", "upgrade", "verify", "drift", "check-revisions", "doctor", "demo")


def _tags_of_cli(world: World, run_id: str, command: str) -> dict[str, str]:
    run = world.run(run_id)
    assert run.tags["user"] == USER
    assert run.tags["abparts_ops/launched_from"] == "cli"
    assert run.tags["abparts_ops/command"].startswith(f"abparts-ops {command}")
    return dict(run.tags)


def test_every_help_names_the_exit_codes_without_rst() -> None:
    parser = build_parser()
    texts = [parser.format_help()]
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        texts.append(subparsers.choices[name].format_help())
    for text in texts:
        assert "exit codes:" in text and "2  bad input" in text
        assert "``" not in text and ":func:" not in text
    drift_help = subparsers.choices["drift"].format_help()
    assert "ENV" in drift_help and "--all" in drift_help and "an environment name" in drift_help
    # the console script itself (the entry point in pyproject.toml)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from abparts_ops.cli import main; sys.exit(main())",
         "check-revisions", "--help"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "--since REV" in done.stdout


def test_reset_is_a_run_of_the_instance_tagged_with_its_launcher(world: World) -> None:
    reset = world.reset
    assert reset["status"] == "SUCCESS" and reset["job"] == "reset_baseline"
    assert reset["baseline"]["action"] == "written" and reset["baseline"]["failed_proofs"] == []
    assert {c["check"] for c in reset["checks"] if c["asset"] == "baseline_revision"} >= {
        "round_trip", "dump_parity", "downgrade_clean", "single_head"
    }
    tags = _tags_of_cli(world, reset["run_id"], "reset")
    assert tags["abparts_ops/command"] == "abparts-ops reset"
    log = reset["log"]
    assert log and "RUN_SUCCESS" in open(log, encoding="utf-8").read()


def test_stamp_dry_run_writes_nothing_then_apply_stamps(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = world.fresh(monkeypatch, ["staging"])
    code, dry = cli("stamp", "staging")
    assert code == OK, dry
    assert dry["outcome"] == "dry_run" and dry["dry_run"] is True
    assert read_revisions(urls["staging"]) == (DEMO_OLD_HEAD,)
    assert dry["record"]["state_before"] == "awaiting_stamp"  # (no checks after a dry run)
    code, done = cli("stamp", "staging", "--apply")
    assert code == OK, done
    assert done["outcome"] == "stamped" and done["record"]["launched_by"] == USER
    assert read_revisions(urls["staging"]) == (world.baseline,)
    [entry] = done["environments"]
    assert SPEC_KEYS <= set(entry) and entry["state"] == "in_sync"
    assert entry["revision"] == world.baseline and entry["pending"] == []
    run = world.run(done["run_id"])
    assert run.job_name == "stamp_staging" and run.tags["abparts_ops/stamp"] == "true"
    assert run.run_config["ops"]["staging__alembic_stamp"]["config"]["dry_run"] is False
    _tags_of_cli(world, done["run_id"], "stamp staging --apply")


def test_prod_without_confirm_is_refused_and_nothing_is_written(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = world.fresh(monkeypatch, ["prod"])
    code, refused = cli("stamp", "prod", "--apply")
    assert code == FOUND, refused
    assert refused["status"] == "FAILURE" and refused["outcome"] == "refused"
    assert "confirm" in refused["message"]
    assert read_revisions(urls["prod"]) == (DEMO_UNKNOWN_REVISION,)
    assert world.run(refused["run_id"]).status.value == "FAILURE"
    _tags_of_cli(world, refused["run_id"], "stamp prod --apply")
    code, other = cli("stamp", "prod", "--apply", "--confirm", "staging")
    assert code == FOUND and other["outcome"] == "refused"
    assert read_revisions(urls["prod"]) == (DEMO_UNKNOWN_REVISION,)


def test_bad_input_exits_2_with_one_line(world: World, capsys: pytest.CaptureFixture) -> None:
    for words in (
        ["stamp", "nosuch"],
        ["verify", "staging", "nosuch"],
        ["drift", "staging", "--all"],
        ["upgrade", "staging", "--acknowledge", "ban-drop-colum"],
        ["check-revisions", "--since", "nosuch"],
        ["stamp"],  # ENV missing: argparse's error, as one line too
    ):
        code, document = cli(*words)
        assert code == BAD_INPUT, (words, document)
        assert set(document) == {"error", "exit_code"} and "\n" not in document["error"]
    code, hint = cli("upgrade", "staging", "--acknowledge", "ban-drop-colum")
    assert "ban-drop-column" in hint["error"]  # the closest rule is named
    code, catch_up = cli("stamp", "staging", "--catch-up")
    assert code != BAD_INPUT  # a real run: staging is not behind the reset, refused (1)
    code, lonely = cli("stamp", "staging", "--catch-up-to", "abc")
    assert code == BAD_INPUT and "go with --catch-up" in lonely["error"]
    assert main(["stamp", "nosuch"]) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "unknown environment 'nosuch'" in err


def test_verify_launches_the_checks_of_the_named_environments(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = world.fresh(monkeypatch, ["staging"])
    assert cli("stamp", "staging", "--apply")[0] == OK
    code, green = cli("verify", "staging")
    assert code == OK, green
    [entry] = green["environments"]
    assert SPEC_KEYS <= set(entry)
    assert (entry["name"], entry["state"], entry["revision"]) == (
        "staging", "in_sync", world.baseline
    )
    assert entry["diff"] == [] and entry["expected_revision"] == world.baseline
    run = world.run(green["run_id"])
    assert run.job_name == "verify_environments"
    assert {(k.asset_key.path[0], k.name) for k in run.asset_check_selection} == {
        ("staging", "revision_is_head"), ("staging", "schema_matches_reference")
    }
    assert _tags_of_cli(world, green["run_id"], "verify staging")[
        "abparts_ops/verdict"] == "all in sync"

    introduce_drift(urls["staging"], "index")
    code, red = cli("verify", "staging")
    assert code == FOUND
    [entry] = red["environments"]
    assert entry["state"] == "schema_drift" and not entry["ok"]
    assert red["status"] == "SUCCESS"  # the checks do not block: the tag says it instead
    assert world.run(red["run_id"]).tags["abparts_ops/verdict"] == "staging: schema_drift"
    assert [(c["change"], c["key"]) for c in entry["diff"]] == [("extra", "drift_demo_idx")]
    code, drift = cli("drift", "staging")  # the same words, read live without a run
    assert code == FOUND
    [live] = drift["environments"]
    assert (live["state"], live["summary"], live["diff"]) == (
        entry["state"], entry["summary"], entry["diff"]
    )


def test_drift_all_reports_every_environment_in_one_document(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.fresh(monkeypatch, ["staging", "prod"])
    code, document = cli("drift", "--all")
    assert code == FOUND  # nothing was stamped: no environment is in sync
    states = {e["name"]: e["state"] for e in document["environments"]}
    assert states == {"dev": "awaiting_stamp", "staging": "awaiting_stamp",
                      "prod": "unknown_revision"}
    for entry in document["environments"]:
        assert SPEC_KEYS <= set(entry)
        assert isinstance(entry["pending"], list) and isinstance(entry["diff"], list)
    prod = next(e for e in document["environments"] if e["name"] == "prod")
    assert prod["revision"] == DEMO_UNKNOWN_REVISION
    monkeypatch.setenv(VARIABLES["prod"], "postgresql://u:s3cretpw@127.0.0.1:1/x")
    code, document = cli("drift", "prod")
    assert code == FOUND and document["environments"][0]["state"] == "unreachable"
    assert "s3cretpw" not in str(document)
