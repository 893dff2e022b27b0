"""The data format version of a log directory, and the rule for opening one of another version.

`<data_dir>/wal/FORMAT` holds the version as ASCII digits and a newline (like PostgreSQL's PG_VERSION);
the magic of every segment and snapshot repeats it (`lockwal1`, `locksnp1`), so a file that strays into
another directory still says what it is. The format is everything on disk: frames, segment and snapshot
layout, and the encoding of the records in them. A change that an older lockstore could misread is a new
version (and new magics).

The rule:

- **Newer than this code reads**: refused before any segment or snapshot is read or changed
  (`UnsupportedFormat`, one line naming the file, the version found and the one supported). A FORMAT
  file that holds no version is refused the same way: guessing could misread the directory.
- **Older**: read as it is and never rewritten in place. The lockstore that reads it marks FORMAT with
  its own version before it writes anything, and writes its own format from then on (compaction removes
  the old files in due course). From then on an older lockstore refuses the directory: to go back,
  restore a copy taken before the upgrade.
- **Format 1 without a FORMAT file** is what lockstore 0.1.0 wrote (and what a new, empty directory
  is): read as format 1; the file is added when the log is next opened for writing, nothing else
  changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from wal.segment import fsync_file, sync_directory, write_all

FORMAT_VERSION = 1
"""The data format this code writes, and the newest it reads."""
FORMAT_FILE = "FORMAT"
_MOST_BYTES = 32  # a version is a few digits; more is not a FORMAT file this code wrote


@dataclass(frozen=True, slots=True)
class DataFormat:
    """The version a directory is in, and whether its FORMAT file says so (False: lockstore 0.1.0 or new)."""

    version: int
    marked: bool

    @property
    def supported(self) -> bool:
        return self.version <= FORMAT_VERSION

    def describe(self) -> str:
        if self.marked:
            return f"data format {self.version} ({FORMAT_FILE})"
        return f"data format {self.version} (no {FORMAT_FILE} file: written by lockstore 0.1.0, or new)"


class UnsupportedFormat(Exception):
    """The directory is in a data format this lockstore cannot read; no segment or snapshot was read or changed."""

    def __init__(self, path: Path, found: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.found = found  # the version found, or the file's content (shortened) when it is no version


def read_format(directory: Path) -> DataFormat:
    """The format of the log directory `directory` (read-only). Raises UnsupportedFormat when its FORMAT
    file holds no version; a newer version is returned (see `check_format`)."""
    path = directory / FORMAT_FILE
    try:
        with path.open("rb") as file:
            content = file.read(_MOST_BYTES + 1)
    except FileNotFoundError:
        return DataFormat(1, marked=False)
    text = content.removesuffix(b"\n")
    if not text or len(content) > _MOST_BYTES or not text.isdigit() or not text.isascii() or int(text) < 1:
        shown = repr(content[:_MOST_BYTES])
        raise UnsupportedFormat(
            path, shown, f"holds no data format version ({shown}); this lockstore reads data format "
            f"{FORMAT_VERSION} and older, and does not guess",
        )
    return DataFormat(int(text), marked=True)


def check_format(directory: Path) -> DataFormat:
    """`read_format`, refusing a version this code cannot read (UnsupportedFormat)."""
    found = read_format(directory)
    if not found.supported:
        raise UnsupportedFormat(
            directory / FORMAT_FILE, str(found.version),
            f"data format {found.version} is newer than this lockstore supports (data format {FORMAT_VERSION} "
            "and older); run the lockstore version that wrote it, or a newer one",
        )
    return found


def mark_format(directory: Path, found: DataFormat) -> None:
    """Make FORMAT say `FORMAT_VERSION` (atomically: temp file, fsync, rename, directory fsync), unless it
    already does. Call with the directory lock held, before anything else is written."""
    if found.marked and found.version == FORMAT_VERSION:
        return
    path = directory / FORMAT_FILE
    temp = directory / f"{FORMAT_FILE}.tmp"
    data = f"{FORMAT_VERSION}\n".encode()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, data)
        fsync_file(fd, temp, len(data))
    finally:
        os.close(fd)
    os.rename(temp, path)
    sync_directory(directory)

