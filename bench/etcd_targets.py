"""The targets of `--state etcd`: lockstore in etcd mode, 1 to N instances on a fresh 3-member etcd cluster
(bench/etcd_cluster.py), and beside them the etcd peer's lock mapping driven directly against such a
cluster. Each target gets a cluster of its own, so no run inherits another's data.

The load generator spreads its connections over the instances (`Endpoint.urls`); a scenario's setup
goes through the first. The sampled processes are every lockstore instance and every etcd member:
`server µs/req` is the CPU of the whole system per request, not of one process.

After the runs against an etcd-mode target (`Target.after`), the report notes each instance's resident
memory and the members', and the start-up of one more instance joining the same state: from spawning
it to serving (its two caches listed and watching), and its memory then.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench import metrics, processes
from bench.etcd_cluster import EtcdCluster, etcd_cluster
from bench.etcd_peer import ETCD_INSTALL_HINT, find_etcd, self_check
from bench.operations import Endpoint
from bench.processes import Unavailable
from bench.targets import Target

UNUSED_DATA_DIR = Path("/nonexistent/etcd-mode-has-no-data-dir")  # `--data-dir` is ignored with --state etcd


def etcd_mode_command(endpoints: tuple[str, ...], prefix: str, *options: str) -> list[str]:
    return processes.lockstore(UNUSED_DATA_DIR, "--state", "etcd", "--etcd-endpoints", ",".join(endpoints),
                               "--etcd-prefix", prefix, *options)


def _rotated(urls: tuple[str, ...], by: int) -> tuple[str, ...]:
    """Instance k talks to member k first (its requests and watches), as a deployment would spread them."""
    by %= len(urls)
    return urls[by:] + urls[:by]


@contextmanager
def _cluster() -> Iterator[EtcdCluster]:
    if find_etcd() is None:
        raise Unavailable(ETCD_INSTALL_HINT)
    with etcd_cluster() as cluster:
        yield cluster


@contextmanager
def lockstore_etcd(instances: int, options: tuple[str, ...] = ()) -> Iterator[Target]:
    """`instances` lockstore processes in etcd mode sharing one prefix of a fresh 3-member cluster."""
    with _cluster() as cluster, ExitStack() as stack:
        prefix = f"bench-{secrets.token_hex(4)}/"
        servers = [stack.enter_context(processes.server(etcd_mode_command(_rotated(cluster.urls, k), prefix,
                                                                          *options)))
                   for k in range(instances)]
        lockstore_pids = tuple(server.process.pid for server in servers)
        first = servers[0]

        def after() -> list[str]:
            return _memory_and_join(cluster, prefix, lockstore_pids, Endpoint("http", first.url), options)

        yield Target(
            f"lockstore-etcd{instances}", "http",
            Endpoint("http", first.url, urls=tuple(server.url for server in servers)),
            (*lockstore_pids, *cluster.pids), metrics=Endpoint("http", first.url), ready_s=first.ready_s,
            start_log=tuple(first.tail), ready_rss_mib=processes.rss_mib(first.process.pid),
            ready_peak_rss_mib=processes.peak_rss_mib(first.process.pid),
            notes=(f"{instances} lockstore instance(s) in etcd mode on a 3-member etcd cluster; server figures "
                   "sum every instance and every member",), after=after,
        )


def _memory_and_join(cluster: EtcdCluster, prefix: str, pids: tuple[int, ...], first: Endpoint,
                     options: tuple[str, ...]) -> list[str]:
    live = metrics.scrape(first)
    locks, rules = int(live.get(metrics.LOCKS_LIVE, 0)), int(live.get(metrics.RULES_LIVE, 0))
    notes = [
        f"at the end, {locks:,} locks and {rules:,} rules: RSS per lockstore instance "
        + ", ".join(f"{processes.rss_mib(pid):,.0f}" for pid in pids) + " MiB (peak "
        + ", ".join(f"{processes.peak_rss_mib(pid):,.0f}" for pid in pids) + " MiB); per etcd member "
        + ", ".join(f"{processes.rss_mib(pid):,.0f}" for pid in cluster.pids) + " MiB"
    ]
    with processes.server(etcd_mode_command(cluster.urls, prefix, *options)) as joined:
        pid = joined.process.pid
        notes.append(f"one more instance joining this state: serving {joined.ready_s:.2f} s after it was spawned "
                     f"(lists {locks:,} locks and {rules:,} rules, then watches), RSS {processes.rss_mib(pid):,.0f} "
                     f"MiB, peak {processes.peak_rss_mib(pid):,.0f} MiB")
    return notes


@contextmanager
def etcd_cluster_peer() -> Iterator[Target]:
    """The etcd peer's lock mapping (bench/etcd_peer.py) driven directly against a fresh 3-member
    cluster, its connections spread over the members as the instances' are."""
    import trio

    with _cluster() as started:
        endpoint = Endpoint("etcd", started.urls[0], urls=started.urls)
        problems = trio.run(self_check, endpoint)
        if problems:
            raise Unavailable("etcd failed the harness's self-check: " + "; ".join(problems))
        yield Target("etcd-cluster", "http", endpoint, started.pids,
                     notes=("the etcd peer's lock mapping on a 3-member cluster, connections spread over the "
                            "members",))
