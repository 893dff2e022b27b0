"""The README's deployment config example lists every setting with its real default, so it cannot go stale."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from transports.config.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _config_example() -> str:
    text = README.read_text()
    deployment = text[text.index("## Deployment"):]
    match = re.search(r"```toml\n(.*?)```", deployment, re.S)
    assert match, "no ```toml block in the README's Deployment section"
    return match[1]


def test_every_setting_is_in_the_example_with_its_default() -> None:
    block = _config_example()
    active = tomllib.loads("\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#")))
    commented = set(re.findall(r"^# (\w+) = ", block, re.M))
    defaults = Settings()
    for name in Settings.__struct_fields__:
        default = getattr(defaults, name)
        if default is None:
            assert name in commented and name not in active, f"{name}: unset by default, show it commented out"
        else:
            assert name in active, f"{name} is missing from the README's config example"
            assert active[name] == default, f"{name}: README says {active[name]!r}, the default is {default!r}"
    assert set(active) | commented == set(Settings.__struct_fields__), "README names a setting that does not exist"


def test_the_example_is_a_valid_config_file(tmp_path: Path) -> None:
    from transports.config.loading import load_settings

    path = tmp_path / "lockstore.toml"
    path.write_text(_config_example())
    assert load_settings({}, {}, path) == Settings()
