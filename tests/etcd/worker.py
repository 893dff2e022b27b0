"""One etcd-mode instance in a process of its own, under client load, for tests/etcd/test_processes.py.

    python -m tests.etcd.worker --endpoints URL,URL --prefix P --until EPOCH --shared A,B --name N --out FILE

Runs an EtcdState with racing lock clients (on the shared instances) and a client of long-lived writes
until the wall-clock time `until`, appending every acknowledged grant and write to FILE as one JSON
line each, flushed at once: a process killed -9 leaves behind exactly what its clients were told.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import trio

from actors.etcd.keys import KeyLayout
from actors.records import Lock, Rule
from tests.etcd.cluster import EtcdCluster
from tests.etcd.history import Grant
from tests.etcd.instances import instance
from tests.etcd.load import Record, contend, durable

REPOSITORY = Path(__file__).resolve().parents[2]


class Line(msgspec.Struct, omit_defaults=True):
    grant: Grant | None = None
    lock: Lock | None = None
    rule: Rule | None = None


_encode = msgspec.json.Encoder().encode
line_decoder = msgspec.json.Decoder(Line)


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.name)
    with Path(args.out).open("ab") as out:

        def write(entry: Grant | Lock | Rule) -> None:
            line = Line(grant=entry) if isinstance(entry, Grant) else Line(lock=entry) if isinstance(entry, Lock) \
                else Line(rule=entry)
            out.write(_encode(line) + b"\n")
            out.flush()

        journal = Record(on_entry=write)
        endpoints = args.endpoints.split(",")
        async with instance(endpoints, KeyLayout.from_prefix(args.prefix), name=args.name) as state:
            until = trio.current_time() + (args.until - time.time())
            async with trio.open_nursery() as nursery:
                for number in range(args.clients):
                    nursery.start_soon(contend, state, f"{args.name}c{number}", args.shared.split(","), until,
                                       random.Random(rng.random()), journal)
                nursery.start_soon(durable, state, f"{args.name}Keeper", until, random.Random(rng.random()), journal)


def spawn(cluster: EtcdCluster, layout: KeyLayout, shared: list[str], until: float, name: str,
                 out: Path) -> subprocess.Popen[bytes]:
    """Start a worker process (it runs until `until`, wall clock); its stderr goes next to `out`."""
    command = [sys.executable, "-m", "tests.etcd.worker", "--endpoints", ",".join(cluster.endpoints),
               "--prefix", layout.prefix.decode(), "--until", str(until), "--shared", ",".join(shared),
               "--name", name, "--out", str(out)]
    return subprocess.Popen(command, cwd=REPOSITORY, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=out.with_suffix(".log").open("wb"), env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
                            start_new_session=True)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--until", type=float, required=True)
    parser.add_argument("--shared", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clients", type=int, default=3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse())
