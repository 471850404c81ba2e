"""Every form a URL can carry a secret in, against every path that fails to connect.

Each case sets staging's (and, for the reset, dev's) variable to one URL form whose
connection fails, runs the failing paths: stamp, verify's checks, ``doctor``, the
``drift`` command, a tick of ``schema_drift_sensor`` and the reset's ``source_schema``,
then counts the secret's occurrences in everything they left: the stored runs and event
logs, the events of each result, every file of the Dagster instance's home (compute
logs, outputs), the sensor's tick data, the log records and the captured stdout/stderr.
The count is printed and must be zero.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from abparts_ops.cli import main
from abparts_ops.core.db import redact_url, scrub
from abparts_ops.core.settings import CONFIG_ENV
from abparts_ops_tests.defs.environments.conftest import VARIABLES, Pipeline, failure_description

TOKEN = uuid.uuid4().hex[:12]
SECRET = f"Sx{TOKEN}Pw"
HEAD, TAIL = f"Sx{TOKEN[:6]}", f"{TOKEN[6:]}Pw"  # an '@' goes between them
SPECIAL = f"{HEAD}@:/?{TAIL}"


def _forms(url: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """URL form -> (the URL, the strings that must appear nowhere)."""
    parsed = sa.engine.make_url(url)
    hp = f"{parsed.host}:{parsed.port}"
    db = parsed.database
    nobody = "abpt_nobody"
    whole = (SECRET,)
    pieces = (HEAD, TAIL)
    return {
        "userinfo": (f"postgresql://{nobody}:{SECRET}@{hp}/{db}", whole),
        "query_password": (f"postgresql://{nobody}@{hp}/{db}?password={SECRET}", whole),
        "password_in_user_field": (f"postgresql://{SECRET}@{hp}/{db}", whole),
        "user_with_colon": (f"postgresql://abpt:nobody:{SECRET}@{hp}/{db}", whole),
        "unencoded_at": (f"postgresql://{nobody}:{HEAD}@{TAIL}@{hp}/{db}", pieces),
        "percent_encoded": (
            f"postgresql://{nobody}:{quote(SPECIAL, safe='')}@{hp}/{db}",
            (*pieces, quote(SPECIAL, safe="")),
        ),
        "sslpassword": (
            f"postgresql://{nobody}@{hp}/{db}?sslmode=disable&sslpassword={SECRET}", whole
        ),
        "passfile": (f"postgresql://{nobody}@{hp}/{db}?passfile=/nonexistent/{SECRET}", whole),
        "dsn": (f"host={parsed.host} port={parsed.port} dbname={db} password={SECRET}", whole),
        "dsn_quoted": (f"host={parsed.host} dbname={db} password='{SECRET} x'", whole),
        "bad_port": (f"postgresql://{nobody}:{SECRET}@{parsed.host}:54x32/{db}", whole),
        "asyncpg": (f"postgresql+asyncpg://{nobody}:{SECRET}@{hp}/{db}", whole),
    }


REFUSED = {
    "unencoded_at": "unencoded '@'",
    "dsn": "key=value connection string",
    "dsn_quoted": "key=value connection string",
    "bad_port": "has a port that is not a number",
    "asyncpg": "names the driver 'asyncpg'",
}
FORMS = sorted(_forms("postgresql://u@h:1/d"))


def test_redaction_routine_on_every_form() -> None:
    """The routine alone: each form's URL, and text quoting it, lose every secret."""
    for name, (url, secrets) in _forms("postgresql://u@127.0.0.1:5432/d").items():
        for text in (redact_url(url), scrub(f"cannot use {url}: failed", url),
                     scrub(f'user "{SECRET}" {url}', url)):
            hits = [s for s in secrets if s in text]
            assert not hits, f"{name}: {text}"


def _tick(pipeline: Pipeline) -> str:
    defs = pipeline.defs
    sensor = defs.resolve_sensor_def("schema_drift_sensor")
    resources = {key: defs.resources[key] for key in sensor.required_resource_keys}
    with dg.build_sensor_context(
        instance=pipeline.instance,
        definitions=defs,
        sensor_name="schema_drift_sensor",
        resources=resources,
    ) as context:
        data = sensor.evaluate_tick(context)
    return serialize_value(data)


@pytest.mark.parametrize("form", FORMS)
def test_no_secret_on_any_failing_path(
    pipeline: Pipeline,
    staging_env: str,
    form: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Stamp, verify, doctor, drift, a sensor tick and source_schema fail; no secret left."""
    caplog.set_level("DEBUG")
    url, secrets = _forms(staging_env)[form]
    monkeypatch.setenv(CONFIG_ENV, str(pipeline.layout.root / "abparts_ops_envtest.yaml"))
    monkeypatch.setenv(VARIABLES["staging"], url)
    results = {
        "stamp": pipeline.stamp("staging", dry_run=False),
        "verify": pipeline.verify(),
    }
    codes = {"doctor": main(["doctor"]), "drift": main(["drift", "staging"])}
    tick = _tick(pipeline)
    monkeypatch.setenv(VARIABLES["dev"], url)
    results["source_schema"] = pipeline.run(
        "__ASSET_JOB", asset_selection=[dg.AssetKey("source_schema")]
    )
    assert not results["stamp"].success and not results["source_schema"].success
    assert codes["doctor"] != 0 and codes["drift"] != 0
    failed = {
        (e.asset_key.path[0], e.check_name)
        for e in results["verify"].get_asset_check_evaluations()
        if not e.passed
    }
    assert ("staging", "revision_is_head") in failed
    if form in REFUSED:  # refused before connecting: one line naming the variable
        description = failure_description(results["stamp"])
        assert REFUSED[form] in description and VARIABLES["staging"] in description
        assert VARIABLES["staging"] in tick and REFUSED[form] in tick

    texts: dict[str, str] = {"sensor tick": tick, "log records": caplog.text}
    instance = pipeline.instance
    for name, result in results.items():
        texts[f"{name} events"] = "\n".join(serialize_value(e) for e in result.all_events)
        texts[f"{name} event log"] = "\n".join(
            serialize_value(entry) for entry in instance.all_logs(result.run_id)
        )
        texts[f"{name} stored run"] = serialize_value(instance.get_run_by_id(result.run_id))
    out, err = capfd.readouterr()
    texts["stdout"], texts["stderr"] = out, err
    for path in Path(instance.root_directory).rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    hits = {
        where: sum(text.count(secret) for secret in secrets) for where, text in texts.items()
    }
    found = {where: count for where, count in hits.items() if count}
    print(f"{form}: {sum(hits.values())} secret hits in {len(texts)} places searched")
    assert not found, f"{form}: secret found in {found}"
