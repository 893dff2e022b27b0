"""wal/format.py on its own: what a FORMAT file may hold (a property against a simple model), that
marking is atomic and only happens when needed, and that segments and snapshots of another format
say so instead of looking merely damaged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from wal.batches import encode_segment_header, parse_segment
from wal.errors import WalCorruption
from wal.format import (
    FORMAT_FILE,
    FORMAT_VERSION,
    DataFormat,
    UnsupportedFormat,
    check_format,
    mark_format,
    read_format,
)
from wal.frame import KIND_HEADER, encode_frame, scan
from wal.log import WriteAheadLog
from wal.snapshot import read_snapshot, write_snapshot


def model(content: bytes) -> int | None:
    """The version a FORMAT file with `content` holds: ASCII digits, one optional newline, at least 1."""
    match = re.fullmatch(rb"([0-9]+)\n?", content)
    if match is None or len(content) > 32 or int(match[1]) < 1:
        return None
    return int(match[1])


@given(st.one_of(st.binary(max_size=40), st.from_regex(rb"\A[0-9]{1,34}\n?\Z"),
                 st.integers(0, 10**30).map(lambda n: f"{n}\n".encode())))
@example(b"1\n")
@example(b"007")
@example(b"\xd9\xa1\n")  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit, not to us
def test_a_format_file_holds_a_version_or_is_refused(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    directory = tmp_path_factory.mktemp("wal")
    (directory / FORMAT_FILE).write_bytes(content)
    expected = model(content)
    if expected is None:
        with pytest.raises(UnsupportedFormat) as caught:
            read_format(directory)
        assert "holds no data format version" in str(caught.value) and "\n" not in str(caught.value)
        return
    assert read_format(directory) == DataFormat(expected, marked=True)
    if expected > FORMAT_VERSION:
        with pytest.raises(UnsupportedFormat) as refused:
            check_format(directory)
        assert refused.value.found == str(expected) and "\n" not in str(refused.value)
    else:
        assert check_format(directory).version == expected


def test_no_format_file_is_format_1_and_marking_is_atomic_and_once(tmp_path: Path) -> None:
    found = check_format(tmp_path)
    assert found == DataFormat(1, marked=False)
    mark_format(tmp_path, found)
    assert (tmp_path / FORMAT_FILE).read_bytes() == b"%d\n" % FORMAT_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == [FORMAT_FILE]  # no temporary left behind
    marked = check_format(tmp_path)
    assert marked == DataFormat(FORMAT_VERSION, marked=True)
    before = (tmp_path / FORMAT_FILE).stat().st_mtime_ns
    mark_format(tmp_path, marked)  # already says so: not written again
    assert (tmp_path / FORMAT_FILE).stat().st_mtime_ns == before


def test_opening_the_log_marks_a_new_directory(tmp_path: Path) -> None:
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    trio.run(wal.aclose)
    assert (tmp_path / "wal" / FORMAT_FILE).read_bytes() == b"%d\n" % FORMAT_VERSION


def test_opening_the_log_refuses_a_newer_format_and_keeps_the_directory_usable(tmp_path: Path) -> None:
    (tmp_path / FORMAT_FILE).write_text(f"{FORMAT_VERSION + 1}\n")
    with pytest.raises(UnsupportedFormat):
        WriteAheadLog.open(tmp_path)
    (tmp_path / FORMAT_FILE).write_text(f"{FORMAT_VERSION}\n")
    wal, _ = WriteAheadLog.open(tmp_path)  # the refusal released the directory lock
    trio.run(wal.aclose)


def _with_magic(data: bytes, magic: bytes) -> bytes:
    """`data` (a segment or snapshot) with its header frame re-encoded around another magic: only the
    magic differs, and every checksum holds."""
    scanned = scan(data)
    header = encode_frame(magic + bytes(scanned.payloads[0])[8:], KIND_HEADER)
    return header + data[scanned.offsets[0] + len(encode_frame(bytes(scanned.payloads[0]), KIND_HEADER)):]


def test_a_segment_of_another_format_says_so() -> None:
    ours = encode_segment_header(1)
    assert parse_segment(ours).problem is None
    problem = parse_segment(_with_magic(ours, b"lockwal2")).problem
    assert problem is not None and problem.kind == "corruption"
    assert problem.reason == "segment of another data format (magic b'lockwal2'; this lockstore reads b'lockwal1')"
    other = parse_segment(_with_magic(ours, b"notwal01")).problem
    assert other is not None and other.reason == "segment does not start with a segment header"


def test_a_snapshot_of_another_format_says_so(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, "locks", 3, b"meta", [b"chunk"], fsync=False)
    assert read_snapshot(path).chunks == [b"chunk"]
    path.write_bytes(_with_magic(path.read_bytes(), b"locksnp2"))
    with pytest.raises(WalCorruption, match=r"snapshot of another data format \(magic b'locksnp2'; this lockstore "
                       r"reads b'locksnp1'\)"):
        read_snapshot(path)
