"""The native server's responses as bytes (transports/http/responses.py) and its route table
(transports/http/routes.py), without sockets."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.http.app import create_app
from transports.http.responses import BadResponseHeader, check_header, response_bytes
from transports.http.routes import API_ROUTES, ECHO_PATH, LOCK_PATH, STORE_PATH, match, published_routes

DATE = b"Sat, 05 Dec 2026 05:00:00 GMT"


def split(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, [tuple(line.split(b": ", 1)) for line in lines], body  # type: ignore[misc]


def test_one_buffer_with_status_length_date_and_body() -> None:
    data = response_bytes(201, [(b"content-type", b"application/json")], b'{"a":1}', close=False, date=DATE)
    assert data == (b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 7\r\n"
                    b"date: " + DATE + b"\r\n\r\n{\"a\":1}")


def test_the_server_owns_framing_and_the_connection() -> None:
    given_headers = [(b"Content-Length", b"999"), (b"Transfer-Encoding", b"chunked"), (b"connection", b"keep-alive"),
                     (b"Date", b"yesterday"), (b"x-a", b"1")]
    status, headers, body = split(response_bytes(200, given_headers, b"ok", close=True, date=DATE))
    assert status == b"HTTP/1.1 200 OK" and body == b"ok"
    assert headers == [(b"x-a", b"1"), (b"content-length", b"2"), (b"connection", b"close"), (b"date", DATE)]


def test_http_1_0_keep_alive_is_said_and_head_has_no_body() -> None:
    _, headers, _ = split(response_bytes(200, [], b"", close=False, http_1_0_keep_alive=True, date=DATE))
    assert (b"connection", b"keep-alive") in headers
    head = response_bytes(200, [(b"content-length", b"7")], b"", close=False, head_request=True, date=DATE)
    assert head.endswith(b"\r\n\r\n") and b"content-length: 7\r\n" in head
    no_content = response_bytes(204, [], b"ignored", close=False, date=DATE)
    assert b"content-length" not in no_content and no_content.endswith(b"\r\n\r\n")


def test_unknown_status_codes_have_an_empty_reason() -> None:
    assert response_bytes(599, [], b"", close=False, date=DATE).startswith(b"HTTP/1.1 599 \r\n")
    with pytest.raises(BadResponseHeader):
        response_bytes(1000, [], b"", close=False, date=DATE)


@pytest.mark.parametrize(("name", "value"), [
    (b"x-request-id", b"a\r\nSet-Cookie: x=1"), (b"x-request-id", b"a\nb"), (b"x", b"a\rb"), (b"x", b"a\x00b"),
    (b"x", b"\x7f"), (b"bad name", b"v"), (b"bad:name", b"v"), (b"", b"v"), (b"x\r\n", b"v"),
])
def test_headers_that_could_end_the_head_are_refused(name: bytes, value: bytes) -> None:
    with pytest.raises(BadResponseHeader):
        response_bytes(200, [(name, value)], b"", close=False, date=DATE)


@pytest.mark.parametrize("value", [b"", b"a\tb", b"caf\xc3\xa9", b"text/html; charset=utf-8", b"\x80\xff"])
def test_field_values_may_hold_tabs_and_obs_text(value: bytes) -> None:
    check_header(b"x-thing", value)


class _ClientView:
    """What a client's parser (llhttp's response side) reads from the bytes."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete += 1


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_a_client_reads_back_exactly_the_headers_that_passed_the_check(name: bytes, value: bytes) -> None:
    """Whatever header a response is given, it is either refused or written so that a client's parser finds
    one response with that header, the server's own, and the body — never an extra header or response."""
    try:
        data = response_bytes(200, [(name, value)], b"body", close=False, date=DATE)
    except BadResponseHeader:
        assert any((byte < 32 and byte != 9) or byte == 127 for byte in value) or not name or any(
            chr(byte) in " \t\r\n:\"(),/;<=>?@[\\]{}" or byte < 33 or byte > 126 for byte in name)
        return
    client = _ClientView()
    httptools.HttpResponseParser(client).feed_data(data)
    ours = {b"content-length", b"date", b"connection", b"transfer-encoding", b"keep-alive"}
    expected = [] if name.lower() in ours else [(name, value.strip(b" \t"))]
    assert client.headers == [*expected, (b"content-length", b"4"), (b"date", DATE)]
    assert (client.body, client.complete) == (b"body", 1)


# ------------------------------------------------------------------------------------------- the route table


@pytest.mark.parametrize(("method", "path", "operation", "params"), [
    ("POST", f"{LOCK_PATH}/create", "lock_create", {}),
    ("POST", f"{LOCK_PATH}/query", "lock_query", {}),
    ("DELETE", f"{LOCK_PATH}/remove/Owner", "lock_remove", {"owner": "Owner"}),
    ("DELETE", f"{LOCK_PATH}/remove/A|b c", "lock_remove", {"owner": "A|b c"}),
    ("POST", f"{STORE_PATH}/query", "store_query", {}),
    ("POST", f"{STORE_PATH}/create", "store_create", {}),
    ("PUT", f"{STORE_PATH}/modify-priorities", "store_modify_priorities", {}),
    ("DELETE", f"{STORE_PATH}/remove", "store_remove", {}),
    ("GET", ECHO_PATH, "echo", {}),
])
def test_each_route_matches_exactly_its_method_and_path(method: str, path: str, operation: str,
                                                        params: dict[str, str]) -> None:
    found = match(method, path)
    assert found is not None and (found[0].operation, found[1]) == (operation, params)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"{LOCK_PATH}/create"), ("HEAD", ECHO_PATH), ("POST", f"{LOCK_PATH}/create/"), ("POST", f"/{LOCK_PATH}/create"),
    ("DELETE", f"{LOCK_PATH}/remove/"), ("DELETE", f"{LOCK_PATH}/remove/a/b"), ("DELETE", f"{LOCK_PATH}/remove"),
    ("GET", "/health/live"), ("OPTIONS", ECHO_PATH), ("GET", "*"),
])
def test_everything_else_is_left_to_the_quart_app(method: str, path: str) -> None:
    assert match(method, path) is None


def test_the_quart_app_serves_the_same_table() -> None:
    """Both servers serve one table: the Quart app's API rules are the table's, method for method."""
    app = create_app(None, None)  # type: ignore[arg-type]
    served = {(rule.rule, method) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in (rule.methods or ()) - {"HEAD", "OPTIONS"}}
    assert served == {(route.rule, route.method) for route in API_ROUTES}
    assert {(rule, *methods) for rule, methods in published_routes()} == served
