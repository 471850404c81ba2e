"""The drift watch: ``schema_drift_sensor`` and ``revision_files_sensor``.

Both are thin: the probing, classification and memory live in
:mod:`abparts_ops.core.watch.drift`, and the state of each environment comes from the one
reference, :mod:`abparts_ops.core.watch.reference`. A tick of ``schema_drift_sensor`` costs one
short query per environment (run concurrently: version rows and a catalog token) plus the
reference: the revision files' fingerprint (a few small reads) and one manifest of the
one expected-schemas cache (:func:`current_reference`; the latest ``expected_schemas``
materialization's index only when the cache holds nothing); only an environment whose
catalogs changed since the last tick (the token moved, or it is the first tick) runs the
full fingerprint query, and the expensive snapshot and diff run only in the verification
run it requests when a fingerprint or revision moves. Between a change of the revision
files and the refresh, what the earlier build still describes is judged and the rest is
``history_changed`` (said in the words of :mod:`abparts_ops.core.history.changes`).
``revision_files_sensor`` costs a few ``stat`` calls unless the versions folder changed.

Environment URLs are read from their variables inside each probe's thread (not through
the ``db_<env>`` resources, whose initialisation would fail the whole tick when one
variable is missing): a missing variable is that environment's problem only.
"""

from __future__ import annotations

import dagster as dg

from abparts_ops.core.history.revisions import versions_fingerprint
from abparts_ops.core.settings import Settings
from abparts_ops.core.watch.drift import versions_signature
from abparts_ops.defs.drift_tick import (
    built_fingerprint,
    cached_project,
    current_reference,
    dump_cursor,
    json_cursor,
    log_states,
    probe_and_plan,
    tick_events,
    tick_text,
    verification_requests,
)
from abparts_ops.defs.jobs import refresh_history_job
from abparts_ops.defs.names import (
    EXPECTED_SCHEMAS,
    MIGRATION_HISTORY,
    REVISION_FILES_SENSOR,
    SCHEMA_DRIFT_SENSOR,
    TRIGGER_TAG,
    VERIFY_JOB,
    VERSIONS_TAG,
)
from abparts_ops.defs.project_settings import is_demo
from abparts_ops.defs.resources import AlembicResource, SchemaPolicyResource


def default_status(demo: bool) -> dg.DefaultSensorStatus:
    """RUNNING in the demo, STOPPED with a production configuration."""
    return dg.DefaultSensorStatus.RUNNING if demo else dg.DefaultSensorStatus.STOPPED


def build_schema_drift_sensor(
    settings: Settings,
    *,
    demo: bool,
    minimum_interval_seconds: int = 60,
    max_workers: int = 16,
    timeout_s: float = 10,
    observe_unchanged: bool = True,
) -> dg.SensorDefinition:
    """Build ``schema_drift_sensor`` for every configured environment (the source too).

    ``max_workers`` bounds concurrent probes (keep it well below the servers'
    ``max_connections``); ``timeout_s`` is each probe's own timeout. With
    ``observe_unchanged=False`` an environment is observed only when its state changes
    (less event-log volume with hundreds of environments).
    """
    environments = list(settings.environments.values())
    connect_timeout_s = settings.probe.connect_timeout_s

    @dg.sensor(
        name=SCHEMA_DRIFT_SENSOR,
        job_name=VERIFY_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status(demo),
        description=(
            "Every tick, probes every environment (the source too) concurrently: its "
            "Alembic version rows and a server-side fingerprint of its schema (recomputed "
            "only when its catalogs changed since the last tick), and puts it in one state "
            "(in sync, behind, awaiting stamp, unknown revision, schema drift, unreachable) "
            "against the expected schema of its own revision (the latest expected_schemas). "
            "Observes [env, live_revision] and [env, live_schema] with the state and the "
            "pending revisions and evaluates their checks (revision_in_sync, "
            "schema_in_sync: the state in one line); requests a verify_environments run "
            "for schema drift and unknown revisions, once per drift. Behind and awaiting "
            "stamp are reported, not verified. Unreachable environments never stop the "
            "others."
        ),
    )
    def schema_drift_sensor(
        context: dg.SensorEvaluationContext,
        alembic: AlembicResource,
        policy: SchemaPolicyResource,
    ) -> dg.SensorResult | dg.SkipReason:
        """Probe, classify with the reference, observe, and request verification of drift."""
        reference = current_reference(context.instance, alembic, policy)
        if reference.view is None:
            return dg.SkipReason(
                "materialize expected_schemas first: the reference is the schema the "
                "migration history builds up to each revision (run the reset_baseline or "
                "refresh_history job)."
            )
        for line in (reference.problem, reference.history):
            if line:
                context.log.warning(line)
        tick = probe_and_plan(
            context.instance, alembic, policy, environments, reference, context.cursor,
            max_workers=max_workers, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
        )
        events = tick_events(tick, observe_unchanged=observe_unchanged)
        log_states(context, tick.states)
        cursor = tick.plan.cursor.encode()
        requests = verification_requests(tick)
        if requests:
            names = sorted(tick.plan.requests)
            more = f" and {len(names) - 50} more" if len(names) > 50 else ""
            context.log.info(
                f"requesting verification of {len(names)} environment(s): "
                + ", ".join(names[:50])
                + more
            )
            return dg.SensorResult(run_requests=requests, cursor=cursor, asset_events=events)
        return dg.SensorResult(skip_reason=tick_text(tick), cursor=cursor, asset_events=events)

    return schema_drift_sensor


def build_revision_files_sensor(
    settings: Settings,
    *,
    demo: bool,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """Build ``revision_files_sensor``: a changed versions folder refreshes the reference.

    A change of the files' content (a new, removed or edited revision) requests
    ``refresh_history`` (``migration_history`` and ``expected_schemas``), once per content;
    so does its first tick when the latest ``expected_schemas`` was built from other files
    (they changed while it was stopped). The drift sensor then puts each environment in
    its state against the new history on its next tick (behind, for a new revision:
    reported, not verified).
    """

    @dg.sensor(
        name=REVISION_FILES_SENSOR,
        jobs=[refresh_history_job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status(demo),
        description=(
            "Watches the Alembic versions folder (names, sizes and mtimes; content hashes "
            "only when those move). When revision files are added, removed or edited, "
            "requests refresh_history: migration_history and expected_schemas (the schema "
            "per revision, the reference of every environment) are rebuilt."
        ),
    )
    def revision_files_sensor(
        context: dg.SensorEvaluationContext, alembic: AlembicResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Request the history refresh and the verification when revision files change."""
        try:
            project = cached_project(alembic)
        except Exception as exc:  # noqa: BLE001 - reported as the tick's skip reason
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return dg.SkipReason(f"the Alembic project cannot be read: {first}")
        folders = project.versions_dirs
        where = ", ".join(str(f) for f in folders)
        try:
            previous = dict(json_cursor(context.cursor))
        except ValueError:
            previous = {}
        signature = versions_signature(folders)
        if previous.get("signature") == signature:
            return dg.SkipReason(f"no change in {where}")
        fingerprint = versions_fingerprint(folders)
        cursor = dump_cursor({"signature": signature, "fingerprint": fingerprint})
        built = built_fingerprint(context.instance)
        if "fingerprint" not in previous:
            if built is None or built == fingerprint:
                return dg.SensorResult(
                    skip_reason=f"now watching {where} (fingerprint {fingerprint[:12]})",
                    cursor=cursor,
                )
            # the files changed while nobody watched: the reference is behind them
        elif previous["fingerprint"] == fingerprint:
            return dg.SensorResult(
                skip_reason=f"files in {where} touched, content unchanged", cursor=cursor
            )
        elif built == fingerprint:
            return dg.SensorResult(
                skip_reason=f"files in {where} changed; expected_schemas already describes them",
                cursor=cursor,
            )
        tags = {TRIGGER_TAG: "revision_files", VERSIONS_TAG: fingerprint[:16]}
        requests = [
            dg.RunRequest(
                run_key=f"history-{fingerprint[:16]}",
                job_name=refresh_history_job.name,
                asset_selection=[MIGRATION_HISTORY, EXPECTED_SCHEMAS],
                tags=tags,
            )
        ]
        context.log.info(
            f"revision files changed in {where} (fingerprint {fingerprint[:12]}): requesting "
            + ", ".join(r.job_name or "" for r in requests)
        )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return revision_files_sensor


def build_sensors(
    settings: Settings,
    *,
    demo: bool | None = None,
    minimum_interval_seconds: int = 60,
    max_workers: int = 16,
    timeout_s: float = 10,
) -> list[dg.SensorDefinition]:
    """``schema_drift_sensor`` and ``revision_files_sensor`` for ``settings``.

    ``demo`` (default: :func:`is_demo`) starts them RUNNING, else STOPPED. The
    ``verify_environments`` and ``refresh_history`` jobs must be in the Definitions too.
    """
    demo = is_demo() if demo is None else demo
    return [
        build_schema_drift_sensor(
            settings,
            demo=demo,
            minimum_interval_seconds=minimum_interval_seconds,
            max_workers=max_workers,
            timeout_s=timeout_s,
        ),
        build_revision_files_sensor(settings, demo=demo),
    ]
