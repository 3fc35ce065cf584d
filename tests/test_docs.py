"""The README and the docs cite only files the repository holds, and the README stays a short
user's page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PATH = re.compile(
    r"`((?:ar_models|vae_models|datamodules|callbacks|metrics|benchmarks|configs|notebooks|tests)"
    r"/[\w/.-]+\.(?:py|yaml|ipynb|png))`"
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_cited_file_exists(page: Path) -> None:
    text = page.read_text()
    missing = [
        target
        for target in LINK.findall(text)
        if not target.startswith(("http://", "https://"))
        and not (page.parent / target).resolve().exists()
    ]
    missing += [path for path in PATH.findall(text) if not (REPO_ROOT / path).exists()]
    assert not missing, f"{page.name} cites files the repository does not hold: {missing}"


def test_readme_is_short() -> None:
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 200


def test_nothing_cites_the_design_notes_outside_the_repository() -> None:
    cited = [
        str(path.relative_to(REPO_ROOT))
        for pattern in ("*.md", "**/*.py", "**/*.yaml", "**/*.ipynb")
        for path in REPO_ROOT.glob(pattern)
        if ".venv" not in path.parts
        and "DESIGN.md" in path.read_text(errors="ignore")
        and path.name != "test_docs.py"
    ]
    assert not cited, cited
