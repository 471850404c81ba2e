"""pytest-alembic's fixtures for the four built-in tests, on the history our reset produced.

The demo's old history cannot pass them (its baseline is a diff). After ``reset_baseline``
(the ``pipeline`` fixture of the parent package) the demo project holds one proven
baseline; a copy of that project is what the built-in tests run on. The tables the
reset excludes (managed elsewhere) are left out of autogenerate by ``include_object``
in the copy's ``env.py``, as an app that excludes tables must do.

The fixtures live in a conftest.py because pytest-alembic binds its tests to one:

    pytest --test-alembic --alembic-tests-path \
        abparts_ops_tests/defs/environments/alembic_builtin/conftest.py

and ``test_builtin.py`` next to it imports the four tests, so plain ``pytest`` runs them
too. (pytest-alembic 0.13 needs pytest 8: under pytest 9 its collector crashes.)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_alembic import Config

from abparts_ops.core.db import make_engine
from abparts_ops_tests.defs.environments.conftest import Pipeline

CONFIGURE = "        target_metadata=target_metadata,\n        compare_type=True,\n    )"
INCLUDE_OBJECT = '''

EXCLUDED_TABLES = {excluded!r}


def include_object(obj, name, type_, reflected, compare_to):
    """Leave the tables managed elsewhere out of autogenerate."""
    return not (type_ == "table" and name in EXCLUDED_TABLES)
'''


@pytest.fixture(scope="module")
def reset_project(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo project as the reset left it, with include_object in env.py."""
    target = tmp_path_factory.mktemp("pytest_alembic") / "app"
    shutil.copytree(pipeline.layout.app_dir, target)
    env_py = next(target.rglob("env.py"))
    text = env_py.read_text(encoding="utf-8")
    assert CONFIGURE in text, "the demo env.py changed: update this test's patch"
    excluded = sorted(pipeline.settings.exclude)
    text = text.replace(
        CONFIGURE,
        CONFIGURE.replace("compare_type=True,", "compare_type=True,\n        "
                          "include_object=include_object,"),
    )
    text = text.replace("\ndef database_url()", INCLUDE_OBJECT.format(excluded=excluded)
                        + "\n\ndef database_url()")
    env_py.write_text(text, encoding="utf-8")
    return target


@pytest.fixture
def alembic_config(reset_project: Path) -> Config:
    """pytest-alembic's configuration: the copied project's alembic.ini."""
    ini = next(reset_project.rglob("alembic.ini"))
    return Config(config_options={"file": str(ini)})


@pytest.fixture
def alembic_engine(db_factory: Callable[..., str]) -> Iterator[sa.Connection]:
    """A connection to an empty database of its own for each built-in test.

    A connection, not an engine: the demo's env.py runs on the connection it is given in
    ``config.attributes["connection"]`` (Alembic's cookbook recipe).
    """
    engine = make_engine(db_factory("pa"))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
