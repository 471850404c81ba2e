"""The reference's rules, without a database: every state from version rows + fingerprint.

The history here is a small linear :class:`ExpectedIndex` (what the sensor reads from the
``expected_schemas`` metadata): ``base -> r2 -> r3``, one probe fingerprint per revision.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from abparts_ops.core.history.changes import RevisionChange
from abparts_ops.core.history.expected import ExpectedIndex, StaleIndex
from abparts_ops.core.history.graph import HistoryGraph
from abparts_ops.core.watch.reference import (
    assess_fingerprint,
    baseline_of,
    describe_revisions,
    expected_for,
    unreachable,
)
from abparts_ops.core.watch.states import ADVICE, EnvironmentState


def linear(fingerprints: dict[str, str], *order: str) -> ExpectedIndex:
    """The index of a linear history ``order`` (base first), one fingerprint per revision."""
    return ExpectedIndex(
        history_fingerprint="h" * 64,
        schema="public",
        exclude=(),
        version_table="alembic_version",
        heads=order[-1:],
        order=order,
        parents={rev: ((order[i - 1],) if i else ()) for i, rev in enumerate(order)},
        probe_fingerprints=fingerprints,
        table_counts=dict.fromkeys(order, 1),
    )


HISTORY = linear({"base": "fp-base", "r2": "fp-r2", "r3": "fp-r3"}, "base", "r2", "r3")
ARCHIVED = {"old1", "old2"}


def assess(revisions: tuple[str, ...] | None, fingerprint: str, **kw: object):
    return assess_fingerprint("staging", revisions, fingerprint, HISTORY, archived=ARCHIVED, **kw)


def test_in_sync_at_the_head_with_its_schema() -> None:
    result = assess(("r3",), "fp-r3")
    assert result.state is EnvironmentState.IN_SYNC
    assert result.pending == () and result.expected_revision == "r3" and result.at_head
    assert result.reason == "staging: in sync: at the head r3, schema matches it"
    assert result.summary == result.reason


def test_behind_lists_pending_revisions_and_is_not_schema_drift() -> None:
    result = assess(("base",), "fp-base")
    assert result.state is EnvironmentState.BEHIND
    assert result.pending == ("r2", "r3")
    assert result.schema_matches is True and result.expected_fingerprint == "fp-base"
    assert "2 pending revision(s): r2, r3" in result.reason
    assert "no schema difference" in result.reason
    assert "upgrade_staging" in result.summary and "reset_baseline" not in result.summary


def test_schema_drift_is_judged_against_its_own_revision() -> None:
    # r2's row with the head's schema: the schema is not what r2 builds.
    result = assess(("r2",), "fp-r3")
    assert result.state is EnvironmentState.SCHEMA_DRIFT
    assert result.expected_revision == "r2" and result.pending == ("r3",)
    assert "differs from what the history builds up to r2" in result.reason
    assert assess(("r3",), "fp-other").state is EnvironmentState.SCHEMA_DRIFT


@pytest.mark.parametrize("rows", [None, (), ("old1",), ("old1", "old2"), ("old2", "base")])
def test_archived_or_no_rows_await_the_stamp_of_the_baseline(
    rows: tuple[str, ...] | None,
) -> None:
    result = assess(rows, "fp-base")
    assert result.state is EnvironmentState.AWAITING_STAMP
    assert result.expected_revision == "base" and result.schema_matches is True
    assert "stamp_staging" in result.summary
    drifted = assess(rows, "fp-r3")
    assert drifted.state is EnvironmentState.SCHEMA_DRIFT
    assert "the baseline base the stamp needs" in drifted.reason


def test_the_proven_baseline_is_used_when_given_else_the_root() -> None:
    assert baseline_of(HISTORY) == "base"
    assert baseline_of(HISTORY, "r2") == "r2"
    assert baseline_of(HISTORY, "gone") == "base"
    assert expected_for(None, HISTORY, baseline="r2").expected_revision == "r2"


def test_an_id_in_no_history_is_an_unknown_revision() -> None:
    result = assess(("9c1f0e7d2b44",), "fp-base")
    assert result.state is EnvironmentState.UNKNOWN_REVISION
    assert result.unknown_ids == ("9c1f0e7d2b44",)
    assert "9c1f0e7d2b44 is in no history" in result.reason
    assert "its schema equals the baseline base" in result.reason
    mixed = assess(("old1", "nowhere"), "fp-r2")
    assert mixed.state is EnvironmentState.UNKNOWN_REVISION
    assert mixed.unknown_ids == ("nowhere",) and mixed.archived_ids == ("old1",)
    assert "also differs from the baseline" in mixed.reason


def test_no_expected_fingerprint_means_not_compared() -> None:
    history = linear({"base": "fp-base"}, "base", "r2")
    result = assess_fingerprint("dev", ("r2",), "anything", history)
    assert result.state is EnvironmentState.IN_SYNC and result.schema_matches is None
    assert "schema not compared" in result.reason


def test_unreachable_and_advice_for_every_state() -> None:
    result = unreachable("prod", "prod: connection refused")
    assert result.state is EnvironmentState.UNREACHABLE
    assert result.reason == "prod: unreachable: connection refused"
    assert set(ADVICE) == set(EnvironmentState)
    for state in EnvironmentState:
        assert "reset_baseline" not in state.advice("prod")
    wanted = {EnvironmentState.SCHEMA_DRIFT, EnvironmentState.UNKNOWN_REVISION}
    assert {s for s in EnvironmentState if s.requests_verification} == wanted
    assert describe_revisions(("a", "b")) == "2 revisions (a, b)"


# -- history changes (issue 19): said once, never judged from a reference behind the files


def graph(contents: dict[str, str], *order: str) -> HistoryGraph:
    """The revision files of a linear history ``order``, one file hash per revision."""
    return HistoryGraph(
        fingerprint="files-" + "-".join(contents[rev] for rev in order),
        heads=order[-1:],
        order=order,
        parents={rev: ((order[i - 1],) if i else ()) for i, rev in enumerate(order)},
        dependencies={},
        contents=contents,
    )


BUILT = replace(HISTORY, contents={"base": "c-base", "r2": "c-r2", "r3": "c-r3"})


def test_a_new_revision_leaves_the_others_behind_and_its_own_not_judged() -> None:
    """The sensor between a new revision file and the refresh: never unknown, never in sync.

    Before, an environment upgraded by hand to the new head was `unknown_revision`.
    """
    contents = {"base": "c-base", "r2": "c-r2", "r3": "c-r3", "r4": "c-r4"}
    files = graph(contents, *HISTORY.order, "r4")
    stale = StaleIndex(BUILT, files)
    assert stale.delta.added == ("r4",) and not stale.delta.changed
    assert stale.affected == ("r4",)
    behind = assess_fingerprint("staging", ("r3",), "fp-r3", stale)
    assert behind.state is EnvironmentState.BEHIND and behind.pending == ("r4",)
    assert "no schema difference" in behind.reason
    upgraded = assess_fingerprint("dev", ("r4",), "fp-anything", stale)
    assert upgraded.state is EnvironmentState.HISTORY_CHANGED
    assert not upgraded.state.ok and not upgraded.state.requests_verification
    assert upgraded.reason == (
        "dev: history changed: at revision r4: dev is at r4, whose expected schema is not "
        "built yet (new since the expected schemas were built: r4); it is judged against the "
        "history as it is now once refresh_history has run"
    )


def test_an_applied_revision_edited_in_place_is_said_by_every_reader() -> None:
    """r2 edited in place after staging ran it (same id, other content).

    Before the refresh (a stale reader): not judged, and the words say why. After it (the
    expected schemas rebuilt, remembering what the old content built): schema drift, in
    the same words; an environment with what the new content builds is in sync.
    """
    files = graph({"base": "c-base", "r2": "c-r2-edited", "r3": "c-r3"}, *HISTORY.order)
    stale = StaleIndex(BUILT, files)
    assert stale.delta.changed == ("r2",) and stale.affected == ("r2", "r3")
    words = (
        "revision r2 changed after staging ran it: compare staging with what the history "
        "builds now (`abparts-ops drift staging` shows the diff)"
    )
    before = assess_fingerprint("staging", ("r3",), "fp-r3", stale)
    assert before.state is EnvironmentState.HISTORY_CHANGED
    assert words in before.reason and before.state is not EnvironmentState.IN_SYNC
    assert assess_fingerprint("base-env", ("base",), "fp-base", stale).state is (
        EnvironmentState.BEHIND
    )

    rebuilt = replace(
        BUILT,
        probe_fingerprints={"base": "fp-base", "r2": "fp-r2-new", "r3": "fp-r3-new"},
        contents=files.contents,
        changes={
            "r2": RevisionChange(changed=("r2",), previous_probe="fp-r2"),
            "r3": RevisionChange(changed=("r2",), previous_probe="fp-r3"),
        },
    )
    after = assess_fingerprint("staging", ("r3",), "fp-r3", rebuilt)
    assert after.state is EnvironmentState.SCHEMA_DRIFT
    assert after.reason.startswith(f"staging: schema drift: {words}: at revision r3, ")
    fresh = assess_fingerprint("prod", ("r3",), "fp-r3-new", rebuilt)
    assert fresh.state is EnvironmentState.IN_SYNC and "changed after" not in fresh.reason
    other = assess_fingerprint("qa", ("r3",), "fp-hand-made", rebuilt)
    assert other.state is EnvironmentState.SCHEMA_DRIFT and "changed after" not in other.reason
