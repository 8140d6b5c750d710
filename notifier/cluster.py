"""This process as one node among several sharing a database.

A node has a name (`cluster.node`, or host name and process id) and a lease length. Its
heartbeat, every third of a lease, says it is alive, renews the leases it holds on feeds,
outbox rows and channels (see `store.leases`), and compares its subscriptions with those of
the other live nodes: two nodes polling different subscriptions would notify differently, so
a node whose configuration differs is named in the log here and in `status`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from notifier import __version__
from notifier.config import Config
from notifier.store import NodeState, Store

log = logging.getLogger("notifier")

__all__ = ["Node", "disagreeing", "node_name"]


def node_name(config: Config) -> str:
    """The configured name, or host name and process id: unique while the process lives."""
    if config.cluster.node:
        return config.cluster.node
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


def disagreeing(nodes: Sequence[NodeState], now: float) -> list[NodeState]:
    """The live nodes whose subscriptions differ from what most live nodes run.

    With a tie (two nodes, two configurations) every live node is named: which one is
    right is for the operator to say.
    """
    live = [n for n in nodes if n.alive(now)]
    counts: dict[str, int] = {}
    for n in live:
        counts[n.config_hash] = counts.get(n.config_hash, 0) + 1
    if len(counts) <= 1:
        return []
    top = max(counts.values())
    winners = [h for h, c in counts.items() if c == top]
    if len(winners) > 1:
        return live
    return [n for n in live if n.config_hash != winners[0]]


@dataclass
class Node:
    """Who this process is in the database, and its heartbeat."""

    name: str
    lease: float
    config_hash: str
    version: str = __version__
    started: float = field(default_factory=time.time)
    last_beat: float = 0.0
    """When the last heartbeat began: it renewed every unexpired lease to then + lease."""
    unbroken_since: float = 0.0
    """When the current run of heartbeats began, each within a lease of the one before: a
    claim older than that may have run out in the gap (a pause), whatever came after."""
    feeds: set[int] = field(default_factory=set)
    """Feeds this node has claimed and works on: only these leases are renewed."""
    claims: set[str] = field(default_factory=set)
    """Outbox claims this node works on: only these are renewed."""
    _warned: frozenset[str] = frozenset()

    @classmethod
    def of(cls, config: Config) -> Node:
        return cls(node_name(config), config.cluster.lease, config.subscriptions_hash())

    @property
    def beat_every(self) -> float:
        return self.lease / 3

    def holds(self, claimed_at: float, now: float) -> bool:
        """Whether a claim taken at `claimed_at` still holds by this node's own clock.

        Checked before starting work under a claim (a fetch, a send), so that a node that
        was paused past its lease does not fetch or send what another node took over; the
        database's fencing token still guards every write.
        """
        if claimed_at < self.unbroken_since:
            return now < claimed_at + self.lease
        # not max(): asked three times per poll, and a builtin with two arguments costs
        # more than the comparison
        last = self.last_beat if self.last_beat > claimed_at else claimed_at
        return now < last + self.lease

    async def beat(self, store: Store, db: Callable[..., Awaitable[Any]],
                   clock: Callable[[], float] = time.time) -> None:
        """One heartbeat; logs (once per change) which nodes run other subscriptions."""
        now = clock()
        await db(store.heartbeat, self.name, self.version, self.config_hash, now, self.lease,
                 self.started, sorted(self.feeds), sorted(self.claims))
        if now - self.last_beat >= self.lease:
            self.unbroken_since = now
        self.last_beat = now
        nodes: list[NodeState] = await db(store.nodes, now)
        odd = disagreeing(nodes, now)
        names = frozenset(f"{n.name} ({n.config_hash})" for n in odd)
        if names and names != self._warned:
            mine = "this node" if any(n.name == self.name for n in odd) else "not this node"
            log.warning("nodes run different subscriptions: %s differ from the others (%s); "
                        "give every node the same configuration", ", ".join(sorted(names)),
                        mine)
        self._warned = names
