"""The registry of kinds is complete: every kind is read, covered, rendered and dropped.

These tests need no database. They fail when a kind is added (a module of
``abparts_ops.core.schema.kinds``) without a DDL renderer, a baseline rendering or a
drop, or when a catalog its query branch reads (directly, or through a deparse function)
is not covered by the catalog token.
"""

from __future__ import annotations

import re

import pytest

from abparts_ops.core.reset.baseline_render import _Renderer
from abparts_ops.core.schema import catalog_sql, model
from abparts_ops.core.schema.ddl import DDL, DROP
from abparts_ops.core.schema.kinds import BY_NAME, KINDS, PHASE, REGISTRY, Kind, branches
from abparts_ops.core.schema.model import Snapshot

#: Catalogs read by the server functions the branches call.
DEPARSE_CATALOGS: dict[str, tuple[str, ...]] = {
    "format_type": ("pg_type",),
    "pg_get_expr": ("pg_proc", "pg_operator", "pg_type", "pg_class", "pg_attribute"),
    "pg_get_constraintdef": ("pg_constraint", "pg_proc", "pg_operator", "pg_attribute"),
    "pg_get_indexdef": ("pg_index", "pg_class", "pg_opclass", "pg_collation", "pg_attribute"),
    "pg_get_partkeydef": ("pg_partitioned_table", "pg_opclass", "pg_collation"),
    "pg_get_viewdef": ("pg_rewrite", "pg_class", "pg_attribute", "pg_proc", "pg_operator"),
    "pg_get_functiondef": ("pg_proc", "pg_language", "pg_type", "pg_namespace"),
    "pg_get_function_identity_arguments": ("pg_proc", "pg_type"),
    "pg_get_triggerdef": ("pg_trigger", "pg_proc", "pg_class", "pg_attribute"),
    "pg_get_ruledef": ("pg_rewrite", "pg_class", "pg_attribute"),
    "pg_get_userbyid": ("pg_authid",),
    "aclexplode": (),
}
_CATALOG = re.compile(r"(?:\bFROM|\bJOIN)\s+(pg_\w+)\b|'(pg_\w+)'::regclass")
_FUNCTION = re.compile(r"\b((?:pg_get_\w+|format_type|aclexplode))\s*\(")


def read_catalogs(sql: str) -> set[str]:
    """Catalogs a branch reads: FROM/JOIN targets, regclass literals, deparse functions."""
    found = {a or b for a, b in _CATALOG.findall(sql)}
    for function in _FUNCTION.findall(sql):
        if function not in DEPARSE_CATALOGS:
            raise AssertionError(f"add the catalogs read by {function}() to DEPARSE_CATALOGS")
        found.update(DEPARSE_CATALOGS[function])
    if "::regproc" in sql:
        found.add("pg_proc")
    return found


def token_covered() -> set[str]:
    """Catalogs the catalog token covers."""
    return set(catalog_sql.TOKEN_CATALOGS) | set(catalog_sql.TOKEN_COVERED)


def uncovered(kind: Kind) -> tuple[set[str], set[str]]:
    """(catalogs the branch reads that the kind does not declare, declared ones the token
    does not cover)."""
    return read_catalogs(kind.sql) - set(kind.catalogs), set(kind.catalogs) - token_covered()


@pytest.mark.parametrize("kind", REGISTRY, ids=KINDS)
def test_every_catalog_a_branch_reads_is_declared_and_in_the_token(kind: Kind) -> None:
    undeclared, not_in_token = uncovered(kind)
    assert not undeclared, f"{kind.name}: its branch reads {sorted(undeclared)}"
    assert not not_in_token, f"{kind.name}: the catalog token misses {sorted(not_in_token)}"


def test_the_helper_ctes_read_only_covered_catalogs() -> None:
    assert read_catalogs(catalog_sql.HELPERS_CTE) <= token_covered()


def test_a_branch_reading_an_uncovered_catalog_is_caught() -> None:
    fake = Kind(
        "fake", "fake", "fakes", "name", "", "SELECT 1 FROM pg_statistic_ext x JOIN pg_am a",
        ("pg_am", "pg_statistic_ext"), 1, 0, "op.execute",
    )
    assert uncovered(fake) == (set(), {"pg_statistic_ext"})
    hidden = Kind(
        "hidden", "hidden", "hiddens", "name", "", "SELECT pg_get_triggerdef(t.oid)",
        (), 1, 0, "op.execute",
    )
    assert "pg_trigger" in uncovered(hidden)[0]


@pytest.mark.parametrize("kind", REGISTRY, ids=KINDS)
def test_every_kind_has_a_ddl_renderer(kind: Kind) -> None:
    renderer = kind.rendered_with or kind.name
    assert renderer in DDL, f"{kind.name}: no DDL renderer (Kind.create)"
    assert BY_NAME[renderer].rendered_with is None


@pytest.mark.parametrize("kind", REGISTRY, ids=KINDS)
def test_every_kind_is_dropped(kind: Kind) -> None:
    if kind.name in DROP:
        assert not kind.dropped_with
        return
    assert kind.dropped_with, f"{kind.name}: neither a drop (Kind.drop) nor dropped_with"
    assert all(owner in DROP for owner in kind.dropped_with)


@pytest.mark.parametrize("kind", REGISTRY, ids=KINDS)
def test_every_kind_has_a_baseline_rendering(kind: Kind) -> None:
    ops = _Renderer(Snapshot(schema="public", objects={})).op_sections()
    if kind.baseline == "op.execute":
        assert (kind.rendered_with or kind.name) in DDL
    else:
        assert kind.baseline.startswith("op.")
        assert (kind.rendered_with or kind.name) in ops, (
            f"{kind.name}: declared as {kind.baseline} but the baseline renderer has no "
            "operation for it"
        )


def test_phases_and_halves() -> None:
    assert all(kind.phase in PHASE.values() for kind in REGISTRY)
    assert all(kind.half in (0, 1) for kind in REGISTRY)
    assert set(branches(0)) | set(branches(1)) == set(branches())
    assert not set(branches(0)) & set(branches(1))
    assert catalog_sql.BRANCHES == branches()
    # the order the issue asks for
    assert PHASE["function"] < PHASE["table"] < PHASE["trigger"]
    assert PHASE["composite"] < PHASE["table"] < PHASE["view"]
    assert PHASE["table"] < PHASE["partition"] < PHASE["index"]


def test_the_format_documentation_lists_every_kind() -> None:
    doc = model.__doc__ or ""
    for kind in REGISTRY:
        assert f"``{kind.name}`` (key ``{kind.key}``)" in doc
    assert model.KINDS == KINDS


@pytest.mark.parametrize("kind", REGISTRY, ids=KINDS)
def test_every_kind_with_objects_of_its_own_has_an_address(kind: Kind) -> None:
    """The dependency query maps the catalog's rows of every kind to snapshot keys (a
    kind without one would be ordered by its phase alone)."""
    if kind.name == "privilege":
        assert not kind.address  # a grant depends on its object, it is no object
        return
    assert kind.address, f"{kind.name}: no address branch for the dependency query"
    assert kind.address in catalog_sql.DEPENDENCIES_SQL
    assert f"'{kind.name}'" in kind.address or kind.name == "column"
