"""The native server's HTTP/1.1 request side without sockets (transports/http/http1.py): bytes in, events out.

Each RFC 9112 rule the server keeps is checked here on the parser alone; tests/integration/test_native_http.py
checks the same requests against the real server on a socket (answered, then closed).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.http.framing import BOTH_LENGTHS, TWO_AUTHORIZATIONS
from transports.http.http1 import (
    BODY_OVER_LIMIT,
    END_OF_MESSAGE,
    NEED_DATA,
    PEER_CLOSED,
    BodyData,
    Event,
    Http1Requests,
    Refusal,
    RequestHead,
)

GET = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"


def events_of(data: bytes | list[bytes], **limits: int) -> list[Event]:
    """Every event of `data` (one feed, or several), body pieces joined into one BodyData per request."""
    requests = Http1Requests(**limits)
    for piece in [data] if isinstance(data, bytes) else data:
        requests.receive_data(piece)
    found: list[Event] = []
    while (event := requests.next_event()) is not NEED_DATA:
        if isinstance(event, BodyData) and found and isinstance(found[-1], BodyData):
            found[-1] = BodyData(found[-1].data + event.data)
        else:
            found.append(event)
    return found


def only_refusal(data: bytes, **limits: int) -> Refusal:
    found = events_of(data, **limits)
    assert len(found) == 1 and isinstance(found[0], Refusal), found
    return found[0]


def post(body: bytes, *headers: bytes) -> bytes:
    return b"POST /p HTTP/1.1\r\nHost: h\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


# ------------------------------------------------------------------------------------------- requests


def test_a_get_is_a_head_then_the_end() -> None:
    head, end = events_of(GET)
    assert isinstance(head, RequestHead) and end is END_OF_MESSAGE
    assert (head.method, head.path, head.query_string, head.http_version) == ("GET", "/a", b"", "1.1")
    assert head.keep_alive and not head.expect_continue and not head.has_body
    assert head.headers == [(b"host", b"h")]


def test_names_are_lower_case_and_values_trimmed_and_the_path_decoded() -> None:
    (head, _) = events_of(b"GET /a%7Cb%20c?x=%7C&y#frag HTTP/1.1\r\nHOST: h \r\nX-Thing:\tv\t\r\n\r\n")
    assert isinstance(head, RequestHead)
    assert head.headers == [(b"host", b"h"), (b"x-thing", b"v")]
    assert (head.path, head.raw_path, head.query_string) == ("/a|b c", b"/a%7Cb%20c", b"x=%7C&y")


def test_a_body_split_anywhere_arrives_whole() -> None:
    data = post(b"0123456789", b"Content-Length: 10")
    whole = events_of(data)
    assert [type(event) for event in whole] == [RequestHead, BodyData, type(END_OF_MESSAGE)]
    assert whole[1] == BodyData(b"0123456789")
    assert events_of([data[i : i + 1] for i in range(len(data))]) == whole


def test_chunked_bodies_with_extensions_and_trailers() -> None:
    data = post(b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nHost: trailer\r\nAuthorization: trailer\r\n\r\n",
                b"Transfer-Encoding: chunked")
    head, body, end = events_of(data)
    assert isinstance(head, RequestHead) and head.chunked and head.content_length is None
    assert body == BodyData(b"abcdefg") and end is END_OF_MESSAGE
    assert head.headers == [(b"host", b"h"), (b"transfer-encoding", b"chunked")]  # trailers are not headers


def test_pipelined_requests_come_out_in_order() -> None:
    found = events_of(GET.replace(b"/a", b"/1") + post(b"xy", b"Content-Length: 2") + GET.replace(b"/a", b"/3"))
    heads = [event.path for event in found if isinstance(event, RequestHead)]
    assert heads == ["/1", "/p", "/3"] and found.count(END_OF_MESSAGE) == 3
    assert BodyData(b"xy") in found


def test_absolute_form_is_served_by_its_path_and_asterisk_form_goes_on() -> None:
    (head, _) = events_of(b"GET http://example.org:80/x/y?q=1 HTTP/1.1\r\nHost: example.org\r\n\r\n")
    assert isinstance(head, RequestHead) and (head.path, head.query_string) == ("/x/y", b"q=1")
    (bare, _) = events_of(b"GET https://example.org HTTP/1.1\r\nHost: example.org\r\n\r\n")
    assert isinstance(bare, RequestHead) and bare.path == "/"
    (star, _) = events_of(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(star, RequestHead) and star.path == "*"


@pytest.mark.parametrize(("version", "connection", "keep_alive"), [
    (b"1.1", b"", True), (b"1.1", b"Connection: close\r\n", False), (b"1.1", b"Connection: Foo, CLOSE\r\n", False),
    (b"1.0", b"", False), (b"1.0", b"Connection: keep-alive\r\n", True), (b"1.0", b"Connection: Keep-Alive\r\n", True),
    (b"1.0", b"Connection: keep-alive, close\r\n", False),
])
def test_keep_alive_by_version_and_connection(version: bytes, connection: bytes, keep_alive: bool) -> None:
    (head, _) = events_of(b"GET / HTTP/" + version + b"\r\nHost: h\r\n" + connection + b"\r\n")
    assert isinstance(head, RequestHead) and head.keep_alive is keep_alive


def test_expect_100_continue_only_on_http_1_1() -> None:
    (head, *_) = events_of(post(b"", b"Content-Length: 2", b"Expect: 100-Continue"))
    assert isinstance(head, RequestHead) and head.expect_continue
    (old, *_) = events_of(b"POST / HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert isinstance(old, RequestHead) and not old.expect_continue


def test_http_1_0_needs_no_host() -> None:
    (head, _) = events_of(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(head, RequestHead) and head.http_version == "1.0"


@pytest.mark.parametrize("body", [b"", b"Content-Length: 3\r\n\r\nabc", b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
                         ids=["no-body", "length", "chunked"])
def test_an_upgrade_is_ignored_and_parsing_goes_on(body: bytes) -> None:
    """llhttp stops at an upgrade request's head and httptools skips its body; lockstore serves the request
    as HTTP/1.1 (there is no h2c here) and reads on: its body, then the next request."""
    head = b"POST /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    data = head + (body or b"\r\n") + GET
    for feeds in ([data], [data[i : i + 7] for i in range(0, len(data), 7)]):
        found = events_of(feeds)
        assert [event.path for event in found if isinstance(event, RequestHead)] == ["/u", "/a"], found
        assert found.count(END_OF_MESSAGE) == 2
        assert [event.data for event in found if isinstance(event, BodyData)] == ([b"abc"] if body else [])


def test_the_peer_closing_is_an_event_and_ends_the_input() -> None:
    requests = Http1Requests()
    requests.receive_data(GET[:10])
    assert requests.in_message and requests.next_event() is NEED_DATA
    requests.receive_data(b"")
    assert requests.next_event() is PEER_CLOSED and requests.stopped
    requests.receive_data(GET)
    assert requests.next_event() is NEED_DATA  # nothing is read after the end


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("headers", [
    (b"Content-Length: 4", b"Transfer-Encoding: chunked"), (b"Transfer-Encoding: chunked", b"Content-Length: 4")],
    ids=["CL-then-TE", "TE-then-CL"])
def test_content_length_with_transfer_encoding_is_refused(headers: tuple[bytes, bytes]) -> None:
    refusal = only_refusal(post(b"4\r\nabcd\r\n0\r\n\r\n", *headers) + GET)
    assert (refusal.status, refusal.message, refusal.method, refusal.path) == (400, BOTH_LENGTHS, "POST", "/p")


@pytest.mark.parametrize("length", [b"Content-Length: 4\r\nContent-Length: 4", b"Content-Length: 4x", b"Content-Length: -4",
                                    b"Content-Length: +4", b"Content-Length: 4, 4", b"Content-Length: ",
                                    b"Content-Length: 99999999999999999999999"],
                         ids=["duplicate", "letters", "negative", "plus", "list", "empty", "overflow"])
def test_duplicate_or_malformed_content_length_is_refused(length: bytes) -> None:
    refusal = only_refusal(post(b"abcd", length))
    assert refusal.status == 400 and refusal.message.startswith("Malformed HTTP request: ")


@pytest.mark.parametrize("chunks", [b"zz\r\nabcd\r\n0\r\n\r\n", b"4\r\nabcdX0\r\n\r\n", b"4\nabcd\n0\n\n",
                                    b"ffffffffffffffffff\r\n"],
                         ids=["not-hex", "no-CRLF-after-data", "bare-LF", "size-overflow"])
def test_bad_chunk_framing_is_refused(chunks: bytes) -> None:
    found = events_of(post(chunks, b"Transfer-Encoding: chunked"))
    assert isinstance(found[0], RequestHead) and isinstance(found[-1], Refusal) and found[-1].status == 400


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: h\n\n", b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", b"get / HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
], ids=["bare-LF", "bare-LF-in-headers", "bare-CR", "obs-fold", "space-before-colon", "NUL", "raw-UTF-8-target",
        "lower-case-method", "unknown-coding"])
def test_malformed_heads_are_refused(data: bytes) -> None:
    assert only_refusal(data).status == 400


@pytest.mark.parametrize(("data", "message"), [
    (b"GET / HTTP/1.1\r\n\r\n", "Request has no Host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "Request has more than one Host header"),
    (b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", "Request has more than one Host header"),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "Request has an invalid Host header"),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "Request has an invalid Host header"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding is not allowed on an HTTP/1.0 request"),
    (b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nauthorization: b\r\n\r\n", TWO_AUTHORIZATIONS),
])
def test_host_transfer_encoding_and_authorization_rules(data: bytes, message: str) -> None:
    refusal = only_refusal(data)
    assert (refusal.status, refusal.message, refusal.method, refusal.path) == (400, message, "GET" if data[0] == 71 else "POST", "/")


@pytest.mark.parametrize("host", [b"example.org", b"example.org:8441", b"127.0.0.1:1", b"[::1]:8441", b"", b"xn--bcher-kva.example"])
def test_valid_hosts(host: bytes) -> None:
    assert isinstance(events_of(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")[0], RequestHead)


@pytest.mark.parametrize("data", [b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", b"GET /\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                  b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"], ids=["2.0", "0.9", "h2-preface", "1.2"])
def test_only_http_1_0_and_1_1(data: bytes) -> None:
    assert only_refusal(data).status == 505


def test_connect_is_refused_with_405() -> None:
    refusal = only_refusal(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n\x16\x03\x01")
    assert (refusal.status, refusal.message, refusal.method, refusal.path) == (
        405, "Request method 'CONNECT' is not supported", "CONNECT", "example.org:443")


def test_a_head_over_the_limit_is_431_even_before_it_ends() -> None:
    long_target = only_refusal(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n")
    assert long_target.status == 431 and "16384 bytes" in long_target.message and long_target.method == "GET"
    requests = Http1Requests()
    requests.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n")
    for n in range(200):  # a flood of headers that never ends
        requests.receive_data(b"X-Flood-%d: %s\r\n" % (n, b"f" * 100))
    refusal = requests.next_event()
    assert isinstance(refusal, Refusal) and refusal.status == 431 and requests.stopped
    assert requests.next_event() is NEED_DATA
    just_fits = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * (16 * 1024 - 50) + b"\r\n\r\n"
    assert isinstance(events_of(just_fits)[0], RequestHead)


def test_a_body_over_the_limit_is_never_buffered_whole() -> None:
    requests = Http1Requests(max_body_bytes=1000)
    requests.receive_data(post(b"", b"Transfer-Encoding: chunked"))
    assert isinstance(requests.next_event(), RequestHead)
    total = 0
    for _ in range(10):
        requests.receive_data(b"190\r\n" + b"x" * 400 + b"\r\n")  # 400 bytes per chunk
        while isinstance(event := requests.next_event(), BodyData):
            total += len(event.data)
        if event is BODY_OVER_LIMIT:
            break
    assert event is BODY_OVER_LIMIT and requests.stopped
    assert 1000 < total <= 1400  # the piece that crossed the limit, and nothing after it
    requests.receive_data(b"190\r\n" + b"x" * 400 + b"\r\n")
    assert requests.next_event() is NEED_DATA


def test_nothing_is_read_after_a_refusal() -> None:
    found = events_of([b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", GET, GET])
    assert len(found) == 1 and isinstance(found[0], Refusal)


def test_requests_before_a_malformed_one_are_kept() -> None:
    found = events_of(GET + b"GARBAGE\r\n\r\n")
    assert isinstance(found[0], RequestHead) and found[1] is END_OF_MESSAGE and isinstance(found[2], Refusal)


# ------------------------------------------------------------------------------------------- properties

VALID = [GET, post(b"{}", b"Content-Length: 2"), post(b"2\r\n{}\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"),
         b"DELETE /r?ids=A,B HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer x\r\n\r\n",
         b"PUT /m HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"]


@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=6), st.lists(st.integers(1, 40), max_size=30))
def test_how_the_bytes_are_cut_never_changes_the_events(requests: list[bytes], cuts: list[int]) -> None:
    """A model: the whole stream fed at once. Any split into reads gives the same events."""
    data = b"".join(requests)
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(data[start : start + cut])
        start += cut
    pieces.append(data[start:])
    assert events_of([piece for piece in pieces if piece]) == events_of(data)
    assert sum(isinstance(event, RequestHead) for event in events_of(data)) == len(requests)


@given(st.binary(max_size=300), st.sampled_from([b"", *VALID]))
def test_any_bytes_give_events_never_an_exception(junk: bytes, prefix: bytes) -> None:
    """Whatever arrives, the parser answers with events: a request, a refusal, or a wish for more bytes."""
    requests = Http1Requests(max_head_bytes=256, max_body_bytes=64)
    requests.receive_data(prefix + junk)
    requests.receive_data(junk)
    found = []
    while (event := requests.next_event()) is not NEED_DATA:
        found.append(event)
    terminal = (BODY_OVER_LIMIT, PEER_CLOSED)  # PEER_CLOSED: an empty read
    assert all(isinstance(event, RequestHead | BodyData | Refusal) or event is END_OF_MESSAGE or event in terminal
               for event in found)
    if requests.stopped:
        assert found and (isinstance(found[-1], Refusal) or found[-1] in terminal)
