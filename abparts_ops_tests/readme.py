"""README.md as test input: the commands and queries it shows are the ones the tests run."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(title: str) -> str:
    """The text of README.md's ``### <title>`` subsection (up to the next heading)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    ends = [i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i > 0]
    return text[start : min(ends, default=len(text))]


def code_blocks(section: str, language: str) -> list[str]:
    """The fenced code blocks of ``section`` in ``language``, in order."""
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)
