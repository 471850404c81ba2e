"""The nightly verification: every environment's checks, never a stamp."""

from __future__ import annotations

import dagster as dg

from abparts_ops.core.settings import Settings
from abparts_ops.defs.names import NIGHTLY_SCHEDULE, TRIGGER_TAG, VERIFY_JOB
from abparts_ops.defs.project_settings import is_demo

NIGHTLY_CRON = "0 2 * * *"


def build_schedules(
    settings: Settings,
    *,
    demo: bool | None = None,
    cron_schedule: str = NIGHTLY_CRON,
    timezone: str = "UTC",
) -> list[dg.ScheduleDefinition]:
    """``nightly_verification``: runs the ``verify_environments`` job at 02:00 (UTC).

    The job holds only asset checks (revision is head, schema matches the reference) of
    every environment's ``alembic_stamp``, the source included; it never stamps. RUNNING
    by default in the demo (``demo``, default: no ``ABPARTS_OPS_CONFIG``), STOPPED with a
    production configuration.
    """
    demo = is_demo() if demo is None else demo
    targets = ", ".join(settings.environments)
    return [
        dg.ScheduleDefinition(
            name=NIGHTLY_SCHEDULE,
            cron_schedule=cron_schedule,
            execution_timezone=timezone,
            job_name=VERIFY_JOB,
            default_status=(
                dg.DefaultScheduleStatus.RUNNING if demo else dg.DefaultScheduleStatus.STOPPED
            ),
            tags={TRIGGER_TAG: "nightly"},
            description=(
                f"Every night at 02:00 {timezone}: the full checks of every environment "
                f"({targets}): revision_is_head and schema_matches_reference, with a "
                "readable diff on failure. Checks only: this never stamps anything."
            ),
        )
    ]
