"""The demo's configuration for one test package: the same file, that package's variables.

Every package that runs the demo writes :data:`~abparts_ops.embedded.demo.DEMO_CONFIG_YAML`
with its own URL variables (``ABPT_<TAG>_<ENV>_URL``), so packages never share a
variable and a change to the demo's configuration reaches every test.
"""

from __future__ import annotations

from collections.abc import Mapping

from abparts_ops.embedded.demo import DEMO_CONFIG_YAML

NAMES = ("dev", "staging", "prod")


def url_variable(tag: str, environment: str) -> str:
    """The variable holding ``environment``'s URL in the package tagged ``tag``."""
    return f"ABPT_{tag}_{environment.upper()}_URL"


def demo_variables(tag: str, names: tuple[str, ...] = NAMES) -> dict[str, str]:
    """Environment (and ``scratch``) -> its URL variable in the package tagged ``tag``."""
    return {name: url_variable(tag, name) for name in (*names, "scratch")}


def demo_config_yaml(
    tag: str,
    names: tuple[str, ...] = NAMES,
    extra: Mapping[str, str] = {},  # noqa: B006 - read only
) -> str:
    """The demo's configuration with the package's variables, only the environments in
    ``names``, plus ``extra`` environments (name -> variable)."""
    lines = []
    for line in DEMO_CONFIG_YAML.splitlines():
        environment = line.strip().split(":")[0]
        if line.startswith("  ") and environment in NAMES and environment not in names:
            continue
        lines.append(line.replace("ABPARTS_", f"ABPT_{tag}_"))
    lines += [f"  {name}: {{url_env: {variable}}}" for name, variable in extra.items()]
    return "\n".join(lines) + "\n"
