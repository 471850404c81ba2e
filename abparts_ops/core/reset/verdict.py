"""A proof's verdict, the one type every proof returns (the registry and each proof's module).

On its own so that a proof living in a module of its own (``smoke``) and the registry
that lists it (``proofs``) both import it, and neither imports the other back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProofResult:
    """One proof's verdict: a one-line summary, Markdown details and numeric metadata."""

    name: str
    passed: bool
    summary: str
    details: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
