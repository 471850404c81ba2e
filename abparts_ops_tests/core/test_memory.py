"""Memory at scale (issue 18, "any size"): the same results, with less held at once.

The fingerprint is computed piece by piece (the same digest as hashing the whole
canonical JSON, which the cache keys and every recorded fingerprint depend on), the
memory of the C allocator is given back between phases, and a large baseline is
compiled to its ``.pyc`` in a child process that the import then reads.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from abparts_ops.core.memory import release_memory
from abparts_ops.core.reset.baseline_files import PRECOMPILE_BYTES, precompile
from abparts_ops.core.schema.model import (
    Snapshot,
    canonical_json,
    sha256_canonical,
    sha256_text,
)

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, depth=st.integers(min_value=0, max_value=4))
def test_the_streamed_digest_is_the_digest_of_the_canonical_json(value: object, depth: int) -> None:
    assert sha256_canonical(value, depth) == sha256_text(canonical_json(value))


@settings(max_examples=100, deadline=None)
@given(
    objects=st.dictionaries(
        st.sampled_from(["table", "column", "index", "view"]),
        st.dictionaries(st.text(min_size=1), st.dictionaries(st.text(), _json, max_size=3)),
        max_size=4,
    ),
    schema=st.text(min_size=1),
)
def test_a_snapshot_fingerprint_is_unchanged(objects: dict, schema: str) -> None:
    """The fingerprint is still sha256 of the canonical JSON of schema and objects."""
    snapshot = Snapshot(schema=schema, objects=objects)
    expected = sha256_text(canonical_json({"schema": schema, "objects": objects}))
    assert snapshot.fingerprint == expected
    assert Snapshot.from_json(snapshot.to_json()).fingerprint == expected


def test_release_memory_gives_freed_memory_back() -> None:
    """Freed large values stop counting in the process's resident size."""

    def rss_kib() -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    release_memory()
    before = rss_kib()
    held = [{"key": f"value {i}", "n": [i, i + 1]} for i in range(400_000)]  # ~150 MiB
    grown = rss_kib()
    assert grown - before > 50_000
    del held
    release_memory()
    assert rss_kib() - before < (grown - before) / 4


def test_a_large_revision_file_is_compiled_in_a_child(tmp_path: Path) -> None:
    """Past PRECOMPILE_BYTES the file's .pyc is written (checked by the source's hash) and
    the import uses it; a small file is left to the import."""
    small = tmp_path / "small.py"
    small.write_text("value = 1\n")
    assert precompile(small) is False
    assert not Path(importlib.util.cache_from_source(str(small))).exists()

    large = tmp_path / "large_rev.py"
    statements = "".join(f'    op.append("""SELECT {i} -- {"x" * 60}""")\n' for i in range(20_000))
    large.write_text(f"op = []\n\n\ndef upgrade():\n{statements}\n\nupgrade()\n")
    assert large.stat().st_size > PRECOMPILE_BYTES
    assert precompile(large) is True
    pyc = Path(importlib.util.cache_from_source(str(large)))
    assert pyc.is_file()
    check = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('large_rev', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert len(module.op) == 20000\n"
        "print(spec.loader.path_stats(sys.argv[1]) is not None)\n"
    )
    stamp = pyc.stat().st_mtime_ns
    done = subprocess.run([sys.executable, "-c", check, str(large)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pyc.stat().st_mtime_ns == stamp  # read, not written again: it was valid

    broken = tmp_path / "broken_rev.py"
    broken.write_text("def upgrade(:\n" + "#" * PRECOMPILE_BYTES + "\n")
    assert precompile(broken) is False  # the import reports it, not this
