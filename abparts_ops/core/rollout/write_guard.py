"""The one guard every write to an environment goes through (stamp, upgrade, and the next).

An environment is its database, not its name, and a protected one is written only on
purpose. Before a write reads anything it means to write from, :meth:`WriteGuard.enter`
refuses, in this order:

1. a ``confirm`` that names another environment (a run config copied from another job is
   a mistake worth refusing, protected or not, dry run or not);
2. a protected environment without ``confirm == environment`` (real writes only);
3. another stamp or upgrade of the same environment holding its advisory lock (the lock is
   then held until the write's transaction ends);
4. a database that another configured environment resolves to (``staging``'s URL pointing
   at prod's database);
5. a protected database whose identity differs from the one recorded at its last write
   (dropped and recreated, restored elsewhere), unless the new identity is acknowledged.

It returns a :class:`GuardReport`: what it checked, the database's identity and the lock
wait, for the write's audit record. :func:`guard_for` builds the guard of one configured
environment (it reads the other environments' identities); callers above ``core`` pass
only their run config and the identity recorded at the last write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.rollout.identity import (
    DatabaseIdentity,
    database_identity,
    identity_of_connection,
)
from abparts_ops.core.rollout.locking import LockBusy, acquire_environment_lock
from abparts_ops.core.settings import Settings

NOTHING_WRITTEN = "nothing was written"
"""The words every refused or rolled-back write ends with, once read back to be true."""

Refusal = Callable[[str], AbpartsOpsError]
"""Makes the caller's own refusal (StampRefused, UpgradeRefused) from a message."""


@dataclass(frozen=True)
class GuardReport:
    """What the guard checked before a write, for the write's audit metadata.

    ``identity`` is the database written to; ``checked`` one line per check that passed;
    ``unchecked`` the other environments whose database could not be compared (they
    were unreachable); ``lock_wait_ms`` the wait for the advisory lock (0 without it).
    """

    environment: str
    identity: DatabaseIdentity
    checked: tuple[str, ...]
    unchecked: tuple[str, ...] = ()
    lock_wait_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: identity, checks, environments not compared, lock wait."""
        return {
            "environment": self.environment,
            "identity": self.identity.to_dict(),
            "checked": list(self.checked),
            "unchecked": list(self.unchecked),
            "lock_wait_ms": round(self.lock_wait_ms, 1),
        }


@dataclass(frozen=True)
class WriteGuard:
    """Everything the guard needs to judge a write to ``environment`` (module doc).

    ``environments`` are the names of every configured environment; ``others`` the
    identities of the other environments' databases, read before the write (``unreadable``
    names those that could not be read, and why); ``recorded_identity`` the identity key
    recorded at the environment's last write; ``acknowledge_identity`` the key the run
    config accepts as its new identity.
    """

    environment: str
    protected: bool = False
    confirm: str | None = None
    environments: frozenset[str] = frozenset()
    others: Mapping[str, DatabaseIdentity] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)
    recorded_identity: str | None = None
    acknowledge_identity: str | None = None

    def check_request(self, *, dry_run: bool, what: str, refuse: Refusal) -> list[str]:
        """Checks 1 and 2 (they need no database); returns what passed, as lines."""
        env = self.environment
        confirm = self.confirm or None
        if confirm is not None and confirm != env:
            other = (
                f"another environment ({confirm})"
                if confirm in self.environments
                else f"{confirm!r}, which is not this environment"
            )
            raise refuse(
                f"{env}: refusing to {what}: run config `confirm` names {other}; a "
                f"confirmation is only ever `confirm: {env}` for {env} (was this run config "
                "meant for another job?); nothing was written."
            )
        if self.protected and not dry_run and confirm != env:
            raise refuse(
                f"{env} is protected: set run config `confirm: {env}` to {what} it "
                "(nothing was written)."
            )
        if self.protected:
            return [f"protected: confirmed as `{env}`" if confirm else "protected: dry run"]
        return ["not protected" + (f" (confirm: {env})" if confirm else "")]

    def check_identity(
        self, identity: DatabaseIdentity, *, what: str, refuse: Refusal
    ) -> list[str]:
        """Checks 4 and 5 on the database the write is connected to; what passed, as lines."""
        env = self.environment
        shared = sorted(name for name, other in self.others.items() if other.key == identity.key)
        if shared:
            raise refuse(
                f"{env}: refusing to {what}: {identity.describe()} is also the database of "
                f"{', '.join(shared)}; give each environment the URL of its own database "
                "(nothing was written)."
            )
        lines = [
            f"database {identity.key} is no other environment's"
            + (f" (compared with {', '.join(sorted(self.others))})" if self.others else "")
        ]
        recorded = self.recorded_identity
        if self.protected and recorded and recorded != identity.key:
            if (self.acknowledge_identity or None) != identity.key:
                raise refuse(
                    f"{env} is protected and its database changed since its last write "
                    f"(identity {recorded} then, {identity.key} now: {identity.describe()}); "
                    f"if this is intended, set run config `acknowledge_identity: "
                    f"{identity.key}` (nothing was written)."
                )
            lines.append(f"new identity {identity.key} acknowledged (was {recorded})")
        elif self.protected and recorded:
            lines.append(f"identity {identity.key} as recorded at the last write")
        return lines

    def inspect(
        self, conn: Connection, *, dry_run: bool, what: str, refuse: Refusal
    ) -> GuardReport:
        """Every check but the lock, on ``conn`` (a dry run's early look; no lock taken)."""
        checked = self.check_request(dry_run=dry_run, what=what, refuse=refuse)
        identity = identity_of_connection(conn)
        checked += self.check_identity(identity, what=what, refuse=refuse)
        return GuardReport(
            self.environment, identity, tuple(checked), tuple(sorted(self.unreadable))
        )

    def enter(
        self,
        conn: Connection,
        *,
        dry_run: bool,
        what: str,
        refuse: Refusal,
        schema: str,
        version_table: str,
        lock_timeout_s: float,
    ) -> GuardReport:
        """Run every check on the write's own transaction of ``conn`` and take its lock.

        Call it first in the transaction that writes: the advisory lock is a transaction
        lock, held until that transaction ends. Raises ``refuse(message)`` on any refusal.
        """
        checked = self.check_request(dry_run=dry_run, what=what, refuse=refuse)
        try:
            waited = acquire_environment_lock(
                conn,
                schema=schema,
                version_table=version_table,
                timeout_s=lock_timeout_s,
                environment=self.environment,
                what=what,
            )
        except LockBusy as exc:
            raise refuse(f"{exc} Refusing to {what}; nothing was written.") from None
        checked.append(f"advisory lock taken after {waited:.0f} ms")
        identity = identity_of_connection(conn)
        checked += self.check_identity(identity, what=what, refuse=refuse)
        return GuardReport(
            self.environment, identity, tuple(checked), tuple(sorted(self.unreadable)), waited
        )


def read_identities(
    urls: Mapping[str, Callable[[], str]], *, connect_timeout: int = 5
) -> tuple[dict[str, DatabaseIdentity], dict[str, str]]:
    """The database identity of each named URL, and, apart, why some could not be read.

    ``urls`` maps an environment to a function giving its URL (read only here, never
    kept). An environment whose variable is unset or whose database cannot be reached is
    reported in the second mapping with a one-line, password-free reason.
    """
    found: dict[str, DatabaseIdentity] = {}
    failed: dict[str, str] = {}
    for name, url in urls.items():
        try:
            found[name] = database_identity(url(), label=name, connect_timeout=connect_timeout)
        except AbpartsOpsError as exc:
            failed[name] = (str(exc).strip().splitlines() or ["unreadable"])[0]
    return found, failed


def guard_for(
    settings: Settings,
    environment: str,
    *,
    confirm: str | None = None,
    acknowledge_identity: str | None = None,
    recorded_identity: str | None = None,
) -> WriteGuard:
    """The :class:`WriteGuard` of ``environment`` as configured in ``settings``.

    Reads the identity of every other configured environment's database now (an
    unreachable one is listed in ``unreadable`` and cannot be compared).
    """
    env = settings.environments[environment]
    others = {
        name: other.url
        for name, other in settings.environments.items()
        if name != environment
    }
    identities, unreadable = read_identities(others)
    return WriteGuard(
        environment=environment,
        protected=env.protected,
        confirm=confirm or None,
        environments=frozenset(settings.environments),
        others=identities,
        unreadable=unreadable,
        recorded_identity=recorded_identity or None,
        acknowledge_identity=acknowledge_identity or None,
    )
