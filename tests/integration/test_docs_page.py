"""The /docs page calls nobody outside: Swagger UI's default `validatorUrl` (validator.swagger.io, sent the
address of the API document by every browser that opens the page) is switched off, and every URL it loads
is relative. The real service, its real page and bundle."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.live_server import LiveServer, live_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, http_server: str) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("docs") / "data", "--no-access-log", http_server=http_server) as server:
        yield server


def swagger_config(page: str) -> dict[str, str]:
    """The `SwaggerUIBundle({...})` options of the page, as `key: <JavaScript text>`."""
    block = re.search(r"SwaggerUIBundle\(\{(.*?)\}\);", page, re.DOTALL)
    assert block, page
    options = re.findall(r"^\s*(\w+):\s*(.+?),?\s*$", block[1], re.MULTILINE)
    return dict(options)


def test_the_swagger_validator_is_off_and_nothing_is_loaded_from_elsewhere(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        page = client.get("/docs").text
        bundle = client.get("/docs/swagger-ui-bundle.js").text
    assert 'validatorUrl:"https://validator.swagger.io/validator"' in bundle  # the default this page overrides
    config = swagger_config(page)
    assert config["validatorUrl"] == "null"
    assert config["url"] == '"openapi.json"'
    assert not re.search(r"https?://|//[a-z]", page, re.IGNORECASE), "the page names another host"
    assert all(not source.startswith(("http", "/")) for source in re.findall(r'(?:src|href)="([^"]+)"', page))


def test_swagger_config_reader() -> None:
    page = 'x SwaggerUIBundle({\n  a: "b",\n  validatorUrl: null,\n  c: [d, e]\n});'
    assert swagger_config(page) == {"a": '"b"', "validatorUrl": "null", "c": "[d, e]"}
