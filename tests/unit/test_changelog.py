"""CHANGELOG.md keeps the Keep a Changelog shape and knows the version the package carries, so a release
cannot bump one without the other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_the_changelog_names_the_packages_version_and_uses_the_usual_sections() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    releases = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert releases and releases[0] == "Unreleased", releases
    unreleased = text[text.index("## [Unreleased]"):text.index(f"## [{releases[1]}]")] if len(releases) > 1 else text
    assert version in releases or f"released as {version}" in unreleased, (
        f"pyproject.toml says {version}: name it in CHANGELOG.md (a '## [{version}]' section, or the Unreleased note)")
    assert set(re.findall(r"^### (\w+)", text, re.M)) <= CATEGORIES
    assert len(releases) == len(set(releases))
