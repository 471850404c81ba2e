"""``doctor``: will the next verify, stamp and reset work? Checked for real, not guessed.

For every environment, the source included: its URL is valid, the server answers, the
role has USAGE on the schema and either the rights on the version table a stamp needs
or, when the table is still missing, CREATE on the schema (the stamp creates it). Then
across environments: no two of them resolve to one database (by
:mod:`abparts_ops.core.rollout.identity`). And the scratch server really creates and drops a
throwaway database. One environment's failure never stops the others' checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.rollout.identity import (
    DatabaseIdentity,
    identity_of_connection,
    shared_databases,
)
from abparts_ops.core.scratch import scratch_database
from abparts_ops.core.settings import EnvironmentSettings, Settings

_STAMP_PRIVILEGES = ("SELECT", "INSERT", "DELETE")


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked (``subject``), whether it is fine, why."""

    subject: str
    ok: bool
    detail: str

    def line(self) -> str:
        """The line printed for this finding (✓ or ✗, the subject, the detail)."""
        return f"{'✓' if self.ok else '✗'} {self.subject}: {self.detail}"


def _one_line(exc: BaseException, subject: str) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.removeprefix(f"{subject}: ")


def missing_privileges(conn: Connection, *, schema: str, version_table: str) -> list[str]:
    """What the role of ``conn`` lacks for verify and stamp; empty when all is there."""
    missing: list[str] = []
    usage = conn.execute(
        sa.text("SELECT has_schema_privilege(:s, 'USAGE')"), {"s": schema}
    ).scalar()
    if not usage:
        return [f"USAGE on schema {schema}"]
    qualified = '"' + schema.replace('"', '""') + '"."' + version_table.replace('"', '""') + '"'
    exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": qualified}).scalar()
    if exists is None:
        create = conn.execute(
            sa.text("SELECT has_schema_privilege(:s, 'CREATE')"), {"s": schema}
        ).scalar()
        if not create:
            missing.append(
                f"CREATE on schema {schema} ({version_table} does not exist yet and the "
                "stamp must create it)"
            )
        return missing
    for privilege in _STAMP_PRIVILEGES:
        granted = conn.execute(
            sa.text("SELECT has_table_privilege(:t, :p)"), {"t": qualified, "p": privilege}
        ).scalar()
        if not granted:
            missing.append(f"{privilege} on {version_table} (needed to stamp)")
    return missing


def check_environment(
    env: EnvironmentSettings, settings: Settings
) -> tuple[Finding, DatabaseIdentity | None]:
    """Reachability, identity and privileges of one environment (never raises)."""
    version_table = settings.alembic.version_table
    try:
        engine = make_engine(env.url(), label=env.name, connect_timeout=settings_timeout(settings))
        try:
            with connect(engine, label=env.name) as conn:
                identity = identity_of_connection(conn)
                missing = missing_privileges(conn, schema=env.schema, version_table=version_table)
        finally:
            engine.dispose()
    except AbpartsOpsError as exc:
        return Finding(env.name, False, _one_line(exc, env.name)), None
    if missing:
        return Finding(env.name, False, "missing " + "; ".join(missing)), identity
    return Finding(env.name, True, f"reachable, privileges ok ({identity.describe()})"), identity


def settings_timeout(settings: Settings) -> int:
    """The connect timeout doctor uses: the probe's (a hanging host costs seconds, once)."""
    return max(1, round(settings.probe.connect_timeout_s))


def check_scratch(settings: Settings) -> Finding:
    """Create and drop a throwaway database on the scratch server, as a reset will."""
    try:
        with scratch_database(settings.scratch_url()):
            pass
    except AbpartsOpsError as exc:
        return Finding("scratch", False, _one_line(exc, "scratch"))
    return Finding("scratch", True, "can create and drop a database")


def run_doctor(settings: Settings) -> list[Finding]:
    """Every finding, in order: environments, shared databases, the scratch server."""
    findings: list[Finding] = []
    identities: dict[str, DatabaseIdentity] = {}
    for env in settings.environments.values():
        finding, identity = check_environment(env, settings)
        findings.append(finding)
        if identity is not None:
            identities[env.name] = identity
    for names in shared_databases(identities):
        findings.append(
            Finding(
                " and ".join(names),
                False,
                f"resolve to the same database ({identities[names[0]].describe()}): point "
                "each environment's variable at its own database (a stamp meant for one "
                "would write to the other).",
            )
        )
    findings.append(check_scratch(settings))
    return findings
