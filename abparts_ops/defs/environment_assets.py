"""Per-environment assets: the guarded stamp and the checks that verify an environment.

For every configured environment, the source included, :func:`build_environment_defs`
makes:

* ``<env>/alembic_stamp``: a materialization means *the environment was stamped* with the
  proven baseline (or was already there). A dry run (the default) materializes nothing:
  it records an observation saying what would change. Before anything, the blocking
  proofs on ``baseline_revision`` must have passed on its latest materialization (else
  one line: "no proven baseline yet: run reset_baseline first"); then
  :func:`~abparts_ops.core.rollout.stamp.guarded_stamp` does the work, comparing the
  environment with the expected schema at that baseline.
* the checks ``revision_is_head`` and ``schema_matches_reference`` on that asset. They
  read the live database and ask the one reference
  (:mod:`abparts_ops.core.watch.reference`) which state it is in: the revision check passes
  only at the head, the schema check only when the schema is what the history builds at
  the environment's own revision (so both pass only on the head's schema).

The stamp and the checks get the expected schemas the one way
(:func:`current_expected`, i.e. ``load_or_build_expected``): current for the revision
files as they are, built or extended from the one cache when it is behind them. None of
them loads a stored ``expected_schemas`` output, so a check never fails only because the
cache was behind the files, and nothing needs an output a failed reset never wrote.
* the job ``verify_environments`` (every environment's checks, no stamp) and one job
  ``stamp_<env>`` per environment carrying the run tag ``abparts_ops/stamp=true``.

Stamps are never targeted by a schedule or a sensor. They run one at a time: each stamp
asset is in the concurrency pool :data:`STAMP_POOL` and carries the op tag
:data:`STAMP_TAG`; the ``stamp_<env>`` jobs carry the same tag as a *run* tag, for the
run queue's tag concurrency limit; and the core takes a PostgreSQL advisory lock anyway.
An environment is its database: a stamp refuses when another configured environment
resolves to the same database, and a protected environment whose database identity
changed since its last stamp needs the new identity acknowledged in run config.
"""

# No ``from __future__ import annotations``: Dagster reads the ``config: StampConfig``
# annotation as it is and cannot resolve a string annotation to a config class.
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from abparts_ops.core.db import scrub
from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.history.expected import ExpectedSchemas
from abparts_ops.core.history.expected_cache import default_cache_dir, load_or_build_expected
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.memory import release_memory
from abparts_ops.core.rollout.catch_up import archive_positions, guarded_catch_up
from abparts_ops.core.rollout.stamp import SchemaDrift, StampResult, guarded_stamp
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.settings import EnvironmentSettings, Settings
from abparts_ops.core.watch.reference import Assessment, baseline_of, describe_revisions
from abparts_ops.core.watch.states import version_rows_text
from abparts_ops.core.watch.verify import probe_state, snapshot_state
from abparts_ops.defs.metadata import diff_metadata, launched_by, md
from abparts_ops.defs.names import (
    BASELINE_REVISION,
    ENVIRONMENTS_GROUP,
    EXPECTED_SCHEMAS,
    HEAD_MATCHES_SOURCE,
    REVISION_IS_HEAD,
    SCHEMA_MATCHES_REFERENCE,
    SOURCE_SCHEMA,
    STAMP_POOL,
    STAMP_TAG,
    VERDICT_TAG,
    stamp_key,
)
from abparts_ops.defs.proof_gate import defined_checks, proven_baseline, unproven_baseline
from abparts_ops.defs.resources import AlembicResource, DatabaseResource, env_resource_key
from abparts_ops.defs.write_guard import guard_metadata, write_guard


@dataclass
class EnvironmentDefs:
    """Everything the environment factory makes, for ``Definitions``."""

    assets: list[dg.AssetsDefinition] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)


class StampConfig(dg.Config):
    """Run config of ``<env>/alembic_stamp``. The default is a dry run."""

    dry_run: bool = Field(
        default=True,
        description="Only report what would change; write nothing (set false to stamp).",
    )
    confirm: str = Field(
        default="",
        description="A protected environment (prod) is stamped only when this is its name.",
    )
    lock_timeout_s: float = Field(
        default=10.0,
        description="How long to wait for another stamp of this environment to finish.",
    )
    allow_behind_head: bool = Field(
        default=False,
        description=(
            "Record the proven baseline although newer revisions exist (the environment is "
            "then behind; upgrade it next). Without it such a stamp refuses."
        ),
    )
    acknowledge_identity: str = Field(
        default="",
        description=(
            "A protected environment whose database identity changed since its last stamp "
            "is stamped only when this is the new identity key (shown in the refusal)."
        ),
    )
    catch_up: bool = Field(
        default=False,
        description=(
            "For an environment behind the reset (behind_archive): run the archived "
            "revisions from its revision to the old head, rehearsed and guarded like an "
            "upgrade, then stamp the baseline, in one run."
        ),
    )
    catch_up_to: str = Field(
        default="",
        description=(
            "With catch_up, when the archived history has several heads: the one the source "
            "was at when the baseline was taken."
        ),
    )
    acknowledge: list[str] = Field(
        default_factory=list,
        description="With catch_up: rule names of reviewed error-level findings.",
    )


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


# -- metadata -----------------------------------------------------------------------------


def stamp_metadata(result: StampResult, *, run_id: str, user: str, dry_run: bool) -> dict[str, Any]:
    """The audit record of one stamp (or dry run): what, before/after, who, which run, where."""
    identity = result.identity
    return {
        "environment": result.environment,
        "action": result.action,
        "dry_run": dry_run,
        "state_before": result.state,
        "revision_before": version_rows_text(result.before, as_metadata=True),
        "revision_after": (
            version_rows_text(result.after, as_metadata=True) if result.after is not None else ""
        ),
        "target": result.target,
        "head": result.head or "",
        "purged": ", ".join(result.purged),
        "purged_count": len(result.purged),
        "purged_archived": ", ".join(result.purged_archived),
        "purged_unknown": ", ".join(result.purged_unknown),
        "creates_version_table": result.creates_version_table,
        "reference_fingerprint": result.reference_fingerprint,
        "actual_fingerprint": result.actual_fingerprint,
        "identity_key": identity.key if identity else "",
        "identity": identity.describe() if identity else "",
        **guard_metadata(result.guard),
        "run_id": run_id,
        "launched_by": user,
        "lock_wait_ms": round(float(result.lock_wait_ms), 1),
        "message": result.message,
    }


def _failure(
    environment: str, message: str, url: str | None, extra: Mapping[str, Any] | None = None
) -> dg.Failure:
    """A ``dg.Failure`` with a one-line description; the whole message in metadata."""
    text = scrub(message, url)
    metadata: dict[str, Any] = {"environment": environment, "action": "refused"}
    if extra:
        metadata.update(extra)
    if text.strip() != _first_line(text) and "diff" not in metadata:
        metadata["details"] = md(text)
    return dg.Failure(description=_first_line(text), metadata=metadata, allow_retries=False)


# -- the factory --------------------------------------------------------------------------


def _stamp_asset(env: EnvironmentSettings, settings: Settings) -> dg.AssetsDefinition:
    key = stamp_key(env.name)
    resource_key = env_resource_key(env.name)
    role = " (the source)" if env.name == settings.source else ""

    @dg.asset(
        key=key,
        group_name=ENVIRONMENTS_GROUP,
        kinds={"postgres", "alembic"},
        deps=[BASELINE_REVISION, EXPECTED_SCHEMAS],
        required_resource_keys={resource_key, "alembic", "policy", "scratch"},
        output_required=False,
        op_tags=STAMP_TAG,
        pool=STAMP_POOL,
        description=(
            f"Guarded `alembic stamp` of {env.name}{role} with the proven baseline"
            + (" (protected: needs `confirm`)" if env.protected else "")
            + ". A materialization means the environment was stamped; a dry run (the "
            "default) only records an observation of what would change."
        ),
        metadata={"environment": env.name, "protected": env.protected},
    )
    def alembic_stamp(context: dg.AssetExecutionContext, config: StampConfig) -> Iterator[Any]:
        """Stamp this environment with the proven baseline, guarded and audited.

        Refuses (a failed run, nothing written) unless the baseline's blocking proofs
        passed on its latest materialization, the environment is awaiting its stamp (or
        holds an id in no history) with the baseline's expected schema, the head has not
        moved past the baseline (else: upgrade), its database is its own, and a protected
        environment got ``confirm: <name>``. The materialization's metadata is the audit
        record: before/after revisions, fingerprints, identity, run id, who launched it.
        """
        db: DatabaseResource = getattr(context.resources, resource_key)
        alembic: AlembicResource = context.resources.alembic
        policy = context.resources.policy
        problem = unproven_baseline(context.instance, defined_checks(context))
        if problem:
            raise _failure(
                env.name,
                f"{env.name}: refusing to stamp: {NO_BASELINE} ({_reason(problem)}; nothing "
                "was written)",
                None,
                {"reason": problem},
            )
        url: str | None = None
        try:
            url = db.get_url()
            project = alembic.project()
            expected = current_expected(context, project, env.schema)
            guard = write_guard(
                context,
                settings,
                env.name,
                confirm=config.confirm,
                acknowledge_identity=config.acknowledge_identity,
            )
            if config.catch_up:
                yield from _catch_up(context, env, settings, config, url, project, expected, guard)
                return
            result = guarded_stamp(
                url,
                environment=env.name,
                script=project.script(),
                expected=expected,
                target=proven_baseline(context.instance),
                archived=archive_positions(project),
                exclude=policy.exclude,
                schema=env.schema,
                version_table=project.version_table,
                version_table_schema=project.version_table_schema,
                dry_run=config.dry_run,
                lock_timeout_s=config.lock_timeout_s,
                allow_behind_head=config.allow_behind_head,
                guard=guard,
            )
        except SchemaDrift as exc:
            raise _failure(env.name, str(exc), url, diff_metadata(exc.diff)) from None
        except AbpartsOpsError as exc:
            raise _failure(env.name, str(exc), url) from None
        metadata = stamp_metadata(
            result,
            run_id=context.run_id,
            user=launched_by(context.run.tags),
            dry_run=config.dry_run,
        )
        context.log.info(result.message)
        if result.action == "dry_run":
            yield dg.AssetObservation(asset_key=key, description=result.message, metadata=metadata)
            return
        yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.target))

    return alembic_stamp


def _catch_up(
    context: dg.AssetExecutionContext,
    env: EnvironmentSettings,
    settings: Settings,
    config: "StampConfig",
    url: str,
    project: AlembicProject,
    expected: ExpectedSchemas,
    guard: Any,
) -> Iterator[Any]:
    """``stamp_<env> {catch_up: true}``: the archived revisions, then the baseline's stamp.

    One guarded, rehearsed, audited run (:func:`~abparts_ops.core.rollout.catch_up.
    guarded_catch_up`); its record is the upgrade's (revisions applied, findings, rows and
    locks, identity), plus the baseline stamped.
    """
    from abparts_ops.defs.upgrade_assets import (
        failure_evidence,
        upgrade_metadata,
        upgrade_policy,
    )

    key = stamp_key(env.name)
    baseline = proven_baseline(context.instance)
    assert baseline is not None
    try:
        result = guarded_catch_up(
            url, environment=env.name, project=project, expected=expected,
            baseline=baseline, scratch_url=context.resources.scratch.get_url(), guard=guard,
            old_head=config.catch_up_to or None, policy=upgrade_policy(settings, env),
            acknowledge=config.acknowledge, dry_run=config.dry_run,
            exclude=context.resources.policy.exclude, schema=env.schema,
        )
    except AbpartsOpsError as exc:
        raise _failure(env.name, str(exc), url, failure_evidence(exc)) from None
    metadata = upgrade_metadata(
        result, run_id=context.run_id, user=launched_by(context.run.tags),
        dry_run=config.dry_run,
    )
    metadata["catch_up"] = True
    context.log.info(result.message)
    if result.action == "dry_run":
        yield dg.AssetObservation(asset_key=key, description=result.message, metadata=metadata)
        return
    yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(baseline))


NO_BASELINE = "no proven baseline yet: run reset_baseline first"
"""The one line of every job and check that needs the proven baseline and has none."""


def no_baseline(environment: str, detail: str | None = None) -> str:
    """``<env>: no proven baseline yet: run reset_baseline first`` (and why, when given)."""
    return f"{environment}: {NO_BASELINE}" + (f" ({detail})" if detail else "")


def _reason(problem: str) -> str:
    """The proof gate's problem without its advice (the one line gives the advice)."""
    cut = len(problem)
    for marker in (" (rerun ", "; run ", "; materialize "):
        at = problem.find(marker)
        if at != -1:
            cut = min(cut, at)
    return problem[:cut].rstrip(" .")


def current_expected(context: Any, project: AlembicProject, schema: str) -> ExpectedSchemas:
    """The expected schemas of the revision files as they are: THE one way, from the cache.

    Built or extended on the scratch server when the cache is behind the files (see
    :func:`~abparts_ops.core.history.expected_cache.load_or_build_expected`), so a reader
    never judges with a reference older than the files. Needs the ``policy`` and
    ``scratch`` resources.
    """
    policy = context.resources.policy
    scratch: DatabaseResource = context.resources.scratch
    expected, _reused = load_or_build_expected(
        scratch.get_url(),
        project,
        schema=schema,
        exclude=policy.exclude,
        cache_dir=default_cache_dir(),
        privileges=policy.compare_privileges,
    )
    return expected


def _state_metadata(assessment: Assessment) -> dict[str, Any]:
    """The state of an environment as check metadata (the same words as the sensor's)."""
    return {
        "environment": assessment.environment,
        "state": assessment.state.value,
        "current": version_rows_text(assessment.revisions, as_metadata=True),
        "head": assessment.head or "",
        "expected_revision": assessment.expected_revision or "",
        "pending": ", ".join(assessment.pending),
        "pending_count": len(assessment.pending),
        "advice": assessment.advice,
    }


def _check_inputs(context: Any, resource_key: str) -> tuple[str, AlembicResource, Any]:
    """The environment's URL, the Alembic resource and the policy of a check's context."""
    db: DatabaseResource = getattr(context.resources, resource_key)
    return db.get_url(), context.resources.alembic, context.resources.policy


def _assess(
    context: dg.AssetCheckExecutionContext,
    env: EnvironmentSettings,
    resource_key: str,
    read: Callable[..., Assessment],
) -> tuple[Assessment, ExpectedSchemas] | dg.AssetCheckResult:
    """Read ``env`` with ``read`` (a probe or a snapshot) and ask the reference its state.

    The reference is the expected schemas of the revision files as they are
    (:func:`current_expected`: built or extended when the cache is behind them, never
    refused for it). A failed check result instead when they cannot be built (without a
    proven baseline: "no proven baseline yet: run reset_baseline first") or the
    environment cannot be read (one safe line).
    """
    url: str | None = None
    try:
        url, alembic, policy = _check_inputs(context, resource_key)
        project = alembic.project()
        baseline = proven_baseline(context.instance)
        try:
            expected = current_expected(context, project, env.schema)
        except AbpartsOpsError as exc:
            line = _first_line(scrub(str(exc), url))
            message = line if baseline else no_baseline(env.name, line)
            return _not_verified(env.name, message)
        assessment = read(
            url,
            environment=env.name,
            expected=expected,
            archived=archive_positions(project),
            baseline=baseline,
            schema=env.schema,
            exclude=policy.exclude,
            version_table=project.version_table,
            version_table_schema=project.version_table_schema,
        )
        return assessment, expected
    except AbpartsOpsError as exc:
        return _error_result(env.name, exc, url)


def _environment_check(
    env: EnvironmentSettings,
    name: str,
    description: str,
    read: Callable[..., Any],
    judge: Callable[[str, Assessment, Any], tuple[bool, str, dict[str, Any]]],
) -> dg.AssetChecksDefinition:
    """One check of ``<env>/alembic_stamp``: read the environment live, judge, tag the run.

    ``read`` is how the state is read (a probe, or a full snapshot); ``judge`` turns the
    reference's assessment into (passed, description, metadata). A failure to read (an
    unreachable database, no expected schemas) is the check's failure, with its reason.
    """
    resource_key = env_resource_key(env.name)

    @dg.asset_check(
        asset=stamp_key(env.name),
        name=name,
        required_resource_keys={resource_key, "alembic", "policy", "scratch"},
        description=description,
    )
    def environment_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Read the environment, ask the one reference, and say its state."""
        found = _assess(context, env, resource_key, read)
        if isinstance(found, dg.AssetCheckResult):
            return with_verdict(context, env.name, found)
        passed, text, metadata = judge(env.name, *found)
        result = dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=text[:1000],
            metadata=metadata,
        )
        return with_verdict(context, env.name, result)

    return environment_check


def _judge_revision(
    environment: str, assessment: Assessment, expected_schemas: Any
) -> tuple[bool, str, dict[str, Any]]:
    """``revision_is_head``: pass iff the live version rows equal ``(head,)``."""
    if assessment.at_head:
        text = f"{environment} is at the head {assessment.head}."
    elif assessment.head is None:
        text = (
            f"the history has {len(expected_schemas.heads)} heads "
            f"({', '.join(expected_schemas.heads)}); expected one (merge them)."
        )
    else:
        text = (
            f"{environment} is at {describe_revisions(assessment.revisions)}; the head is "
            f"{assessment.head}. State: {assessment.summary}"
        )
    return assessment.at_head, text, _state_metadata(assessment)


def _judge_schema(
    environment: str, assessment: Assessment, _expected: Any
) -> tuple[bool, str, dict[str, Any]]:
    """``schema_matches_reference``: pass iff the diff with the expected schema is empty."""
    diff = assessment.diff
    passed = assessment.schema_matches is True
    if diff is None:
        text = f"{environment}: schema not compared: {assessment.summary}"
    elif passed:
        text = (
            f"{environment} matches the expected schema at {assessment.expected_revision}. "
            f"State: {assessment.summary}"
        )
    else:
        text = (
            f"{environment} differs from the expected schema at "
            f"{assessment.expected_revision} in {diff.counts()['total']} object(s). "
            f"State: {assessment.summary}"
        )
    metadata: dict[str, Any] = {
        **_state_metadata(assessment),
        "actual_probe_fingerprint": assessment.actual_fingerprint or "",
    }
    if diff is not None:
        metadata.update(diff_metadata(diff))
    return passed, text, metadata


def _revision_check(env: EnvironmentSettings) -> dg.AssetChecksDefinition:
    return _environment_check(
        env,
        REVISION_IS_HEAD,
        f"{env.name}'s version table holds exactly the single head of the history "
        "(read live; no stamp needed). On failure the description gives its state: "
        "behind (pending revisions listed), awaiting its stamp, unknown revision.",
        probe_state,
        _judge_revision,
    )


def _schema_check(env: EnvironmentSettings) -> dg.AssetChecksDefinition:
    return _environment_check(
        env,
        SCHEMA_MATCHES_REFERENCE,
        f"{env.name}'s live schema (after exclusions) equals what the migration history "
        "builds up to its own revision (expected_schemas; the proven baseline while it "
        "awaits its stamp); the Markdown diff is attached when it does not.",
        snapshot_state,
        _judge_schema,
    )


ALL_IN_SYNC = "all in sync"
"""The verdict of a run whose environment checks all passed."""


def merge_verdict(current: str | None, environment: str, state: str | None) -> str:
    """The run's verdict after one check: ``all in sync``, or ``env: state; ...``.

    ``state`` is None when the check passed. The same words as ``abparts-ops verify``
    tags its runs with (the environments not in sync, each with its state).
    """
    found: dict[str, str] = {}
    if current and current != ALL_IN_SYNC:
        for part in current.split("; "):
            name, sep, value = part.partition(": ")
            if sep:
                found[name] = value
    if state is not None:
        found.setdefault(environment, state)
    return "; ".join(f"{name}: {value}" for name, value in found.items()) or ALL_IN_SYNC


def with_verdict(
    context: dg.AssetCheckExecutionContext, environment: str, result: dg.AssetCheckResult
) -> dg.AssetCheckResult:
    """Tag the run with its verdict so far (``abparts_ops/verdict``), then return ``result``.

    A verification that found drift stays a successful run (it did its work; a failed
    run means it could not verify), and the Runs list shows this tag beside it:
    ``staging: schema_drift``. Checks of one run execute one after another in its process.
    """
    state = None
    if not result.passed:
        value = result.metadata.get("state")
        state = str(getattr(value, "value", value) or "unreachable")
    run_id = context.op_execution_context.run_id
    try:
        run = context.instance.get_run_by_id(run_id)
        current = run.tags.get(VERDICT_TAG) if run is not None else None
        verdict = merge_verdict(current, environment, state)
        if verdict != current:
            context.instance.add_run_tags(run_id, {VERDICT_TAG: verdict[:250]})
    except Exception as exc:  # noqa: BLE001 - a tag is a courtesy; the result stands
        context.log.warning(f"could not tag the run with its verdict: {exc}")
    return result


def _not_verified(environment: str, message: str) -> dg.AssetCheckResult:
    """A failed check whose environment could not be judged (``message``: one line)."""
    detail = message[len(environment) + 2 :] if message.startswith(f"{environment}: ") else message
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{environment}: not verified: {detail}"[:1000],
        metadata={"environment": environment, "error": message},
    )


def _error_result(environment: str, exc: Exception, url: str | None) -> dg.AssetCheckResult:
    """A failed check for an environment that cannot be read (one safe line)."""
    text = scrub(str(exc), url)
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=_first_line(text)[:1000],
        metadata={"environment": environment, "state": "unreachable", "error": text},
    )


@dg.asset_check(
    asset=EXPECTED_SCHEMAS,
    name=HEAD_MATCHES_SOURCE,
    additional_ins={"source_schema": dg.AssetIn(key=SOURCE_SCHEMA)},
    required_resource_keys={"alembic", "policy", "scratch"},
    description=(
        "The expected schema of the proven baseline (the head, right after a reset) equals "
        "source_schema, the evidence of the reset: the history rebuilds what the source had."
    ),
)
def head_matches_source_schema(
    context: dg.AssetCheckExecutionContext, source_schema: Snapshot
) -> dg.AssetCheckResult:
    """Diff the baseline's expected schema with ``source_schema``; pass iff empty."""
    release_memory()  # the previous steps' values, before a second schema is loaded
    policy = context.resources.policy
    expected_schemas = current_expected(
        context, context.resources.alembic.project(), policy.schema_name
    )
    baseline = baseline_of(expected_schemas, proven_baseline(context.instance))
    reference = expected_schemas.snapshot(baseline) if baseline else None
    if reference is None:
        return dg.AssetCheckResult(
            passed=False,
            description="the history has no revision: nothing to compare with source_schema.",
        )
    diff = diff_snapshots(
        source_schema,
        reference,
        reference_label="source_schema",
        actual_label=f"expected at {baseline}",
    )
    head = ", ".join(expected_schemas.heads)
    return dg.AssetCheckResult(
        passed=diff.is_empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"the expected schema at the baseline {baseline} (head {head}) equals source_schema."
            if diff.is_empty
            else f"the expected schema at the baseline {baseline} differs from source_schema in "
            f"{diff.counts()['total']} object(s) (was source_schema rematerialized after the "
            "reset?)."
        ),
        metadata={"baseline": baseline, "head": head, **diff_metadata(diff)},
    )


def build_environment_defs(settings: Settings) -> EnvironmentDefs:
    """The stamp asset and its two checks for every environment (the source too).

    Their jobs (``stamp_<env>``, ``verify_environments``) are in :mod:`abparts_ops.defs.jobs`.
    """
    defs = EnvironmentDefs()
    for env in settings.environments.values():
        defs.assets.append(_stamp_asset(env, settings))
        defs.checks.extend([_revision_check(env), _schema_check(env)])
    return defs
