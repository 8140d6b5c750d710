"""Several nodes on one database: claims with leases and fencing tokens, and heartbeats.

A node polls a feed only after claiming it: one statement takes a batch of due, unleased
feeds (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two nodes never wait on or take the same
row), stamps them with the node's name and a lease, and bumps each feed's fencing token.
The poll's results are written only if, in the writing transaction and under a row lock,
the feed still carries that token: a node that was paused past its lease (SIGSTOP, a long
GC, a partition) finds the token moved on when it wakes and writes nothing. A node's
heartbeat renews its unexpired leases, so a lease only runs out when the node stops
beating; a dead node's feeds are due again for the others within one lease.

Channels are leased the same way, whole: one node delivers to a channel at a time, so one
node paces it and builds its digests. A pause a server asked for is stored with the channel.
Outbox rows are claimed under a claim id, and a send's outcome is written only under it.

SQLite runs the same statements without the row locks (`Connection.for_update`), behind
the one write lock a transaction takes first (`Connection.lock_for_writing`); it has one node.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from notifier.store.db import Connection, Database, Result, chunks, listed
from notifier.store.records import FeedState, NodeState, PollRecord

__all__ = ["LeaseStore", "new_claim_id"]


def new_claim_id() -> str:
    return uuid.uuid4().hex


class LeaseStore:
    """The lease half of `Store` (mixed into it); every method is one transaction."""

    db: Database

    # Provided by `Store`.
    def _write_polls(self, conn: Connection, records: Iterable[PollRecord],
                     fence: tuple[str, Mapping[int, int]] | None = None) -> int:
        raise NotImplementedError

    def _feed_states_of(self, result: Result) -> list[FeedState]:
        raise NotImplementedError

    def _state_columns(self) -> str:
        """The columns `_feed_states_of` reads, in its order, as a SELECT list."""
        raise NotImplementedError

    # --- feeds ---------------------------------------------------------------------------

    def claim_feeds(self, node: str, now: float, feed_ids: Sequence[int] | None, limit: int,
                    lease: float, due_only: bool = True) -> list[FeedState]:
        """Take up to `limit` unleased due feeds, most overdue first.

        Without `feed_ids` any due feed is taken: the statement walks the `next_due` index,
        so its cost does not grow with the number of feeds (the caller gives back a feed it
        does not poll). With `feed_ids` only those; `due_only=False` (`run --once`) takes
        them whether due or not, still never one that another node holds.
        """
        if limit <= 0 or (feed_ids is not None and not feed_ids):
            return []
        params: dict[str, Any] = {"now": now, "limit": limit, "node": node,
                                  "until": now + lease}
        with self.db.begin() as conn:
            conditions = ["(lease_until IS NULL OR lease_until < :now)"]
            if feed_ids is not None:
                condition, params["feed_ids"] = conn.among("id", "feed_ids",
                                                          sorted(set(feed_ids)))
                conditions.append(condition)
            if due_only:
                conditions.append("next_due <= :now")
            chosen = (f"SELECT id FROM feeds WHERE {' AND '.join(conditions)} "
                      f"ORDER BY next_due LIMIT :limit{conn.for_update(skip_locked=True)}")
            claimed = self._feed_states_of(conn.execute(
                "UPDATE feeds SET lease_owner = :node, lease_until = :until, "
                f"lease_token = lease_token + 1 WHERE id IN ({chosen}) "
                f"RETURNING {self._state_columns()}", params))
        claimed.sort(key=lambda f: f.next_due)
        return claimed

    def record_fenced(self, records: Sequence[PollRecord], node: str,
                      tokens: dict[int, int]) -> tuple[int, list[int]]:
        """Write the polls whose feed still carries the token they were claimed under.

        Returns how many notifications were queued and the feeds whose results were
        refused because another node claimed them since. The tokens are read under a row
        lock in the writing transaction, so no claim can slip in between check and write.
        """
        ids = sorted({r.feed_id for r in records})
        with self.db.begin() as conn:
            conn.lock_for_writing()
            current: dict[int, tuple[str | None, int]] = {}
            for chunk in chunks(ids):
                # Who holds each feed, under which token: one parameter for the ids, so
                # the statement's text is the same for every batch.
                condition, value = conn.among("id", "ids", chunk)
                rows = conn.execute(
                    f"SELECT id, lease_owner, lease_token FROM feeds WHERE {condition} "
                    f"ORDER BY id{conn.for_update()}", {"ids": value}).tuples()
                current.update({fid: (owner, token) for fid, owner, token in rows})
            kept = {fid for fid in ids
                    if current.get(fid) == (node, tokens.get(fid))}
            # Unchanged polls (most of a cycle) in one executemany, as `record_polls`; the
            # same statement ends each lease and stamps the row with its poller and token
            # (the token the row carries: it was just read under the lock).
            queued = self._write_polls(conn, [r for r in records if r.feed_id in kept],
                                       (node, {fid: current[fid][1] for fid in kept}))
        return queued, [fid for fid in ids if fid not in kept]

    def release_feeds(self, node: str, feed_ids: Iterable[int],
                      not_before: float | None = None) -> None:
        """Give back claimed feeds this node did not poll (a stop cut the cycle short).

        With `not_before`, a feed no subscription of this node reads: it is not due again
        before then (`now + interval`), so claims do not keep returning it."""
        wanted = sorted(set(feed_ids))
        due = "" if not_before is None else ", next_due = :not_before + interval"
        with self.db.begin() as conn:
            for chunk in chunks(wanted):
                ids, params = listed("id", chunk)
                conn.execute(f"UPDATE feeds SET lease_until = NULL{due} "
                             f"WHERE id IN {ids} AND lease_owner = :node",
                             {**params, "node": node, "not_before": not_before})

    # --- channels ------------------------------------------------------------------------

    def lease_channel(self, name: str, node: str, now: float, lease: float
                      ) -> tuple[bool, float | None]:
        """Take or keep delivering to a channel; (whether this node has it, its pause).

        The pause is any time before which a server asked not to be sent more.
        """
        with self.db.begin() as conn:
            conn.execute(_ADD_CHANNEL, {"name": name})
            taken = conn.execute(
                "UPDATE channel_state SET lease_owner = :node, lease_until = :until "
                "WHERE name = :name AND (lease_owner = :node OR lease_until IS NULL "
                "OR lease_until < :now) RETURNING paused_until",
                {"node": node, "until": now + lease, "name": name, "now": now}).tuples()
            if taken:
                return True, taken[0][0]
            paused = conn.execute("SELECT paused_until FROM channel_state WHERE name = :name",
                                  {"name": name}).scalar()
            return False, paused

    def pause_channel(self, name: str, until: float) -> None:
        """Remember for every node that a channel's server asked for a pause."""
        with self.db.begin() as conn:
            conn.execute(_ADD_CHANNEL, {"name": name})
            conn.execute("UPDATE channel_state SET paused_until = :until WHERE name = :name "
                         "AND (paused_until IS NULL OR paused_until < :until)",
                         {"name": name, "until": until})

    # --- nodes ---------------------------------------------------------------------------

    def heartbeat(self, node: str, version: str, config_hash: str, now: float,
                  lease: float, started: float, feed_ids: Sequence[int] = (),
                  claim_ids: Sequence[str] = ()) -> None:
        """Say this node is alive and renew the leases on the feeds and outbox claims it
        is working on (a claim abandoned by a failed cycle then runs out).

        Only unexpired leases are renewed: one that ran out may be another node's by now.
        Channel leases are renewed by the delivery that holds them.
        """
        until = now + lease
        with self.db.begin() as conn:
            conn.execute(
                "INSERT INTO nodes (name, version, config_hash, started, heartbeat, lease, "
                "stopped) VALUES (:name, :version, :config_hash, :started, :heartbeat, "
                ":lease, NULL) ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
                "config_hash = excluded.config_hash, started = excluded.started, "
                "heartbeat = excluded.heartbeat, lease = excluded.lease, stopped = NULL",
                {"name": node, "version": version, "config_hash": config_hash,
                 "started": started, "heartbeat": now, "lease": lease})
            if feed_ids:
                condition, ids = conn.among("id", "feed_ids", sorted(set(feed_ids)))
                mine = (f"SELECT id FROM feeds WHERE {condition} AND lease_owner = :node "
                        f"AND lease_until >= :now{conn.for_update(skip_locked=True)}")
                conn.execute(f"UPDATE feeds SET lease_until = :until WHERE id IN ({mine})",
                             {"feed_ids": ids, "node": node, "now": now, "until": until})
            if claim_ids:
                claims, params = listed("claim", list(claim_ids))
                conn.execute(f"UPDATE outbox SET claimed_until = :until WHERE claim_id IN "
                             f"{claims} AND claim_owner = :node AND claimed_until >= :now",
                             {**params, "until": until, "node": node, "now": now})

    def release_stranded(self, node: str, taken_before: float, claims: Collection[str]) -> None:
        """Give back `node`'s outbox claims that run out by `taken_before` (taken before the
        state failed, so never renewed since), except those it still works on (`claims`): a
        claim taken later runs out later, so none is given back while in use.

        Feed leases are left to run out: a feed whose poll could not be written is due at
        once, and giving it back now would ask its server again within a second."""
        params: dict[str, Any] = {"node": node, "before": taken_before}
        kept = ""
        if claims:
            names, listed_claims = listed("claim", list(claims))
            kept = f" AND claim_id NOT IN {names}"
            params.update(listed_claims)
        with self.db.begin() as conn:
            conn.execute("UPDATE outbox SET claimed_until = NULL WHERE claim_owner = :node "
                         "AND claimed_until IS NOT NULL AND claimed_until <= :before" + kept,
                         params)

    def release_node(self, node: str, now: float, everyone: bool = False) -> None:
        """Give back what `node` holds (at its stop, or at start after a crash), so that
        others need not wait for the lease; `everyone` when the database has one node.

        Then (`everyone`) every other node is a process gone for good, and those that are
        no feed's last poller are forgotten: each `run --once` is a node of its own (host
        name and process id), and `status` listed every one that ever ran."""
        def owned(column: str) -> str:
            return "" if everyone else f" AND {column} = :node"

        params = {"node": node, "now": now}
        with self.db.begin() as conn:
            conn.execute("UPDATE feeds SET lease_until = NULL WHERE lease_until IS NOT NULL"
                         + owned("lease_owner"), params)
            conn.execute("UPDATE outbox SET claimed_until = NULL "
                         "WHERE claimed_until IS NOT NULL" + owned("claim_owner"), params)
            conn.execute("UPDATE channel_state SET lease_until = NULL, lease_owner = NULL "
                         "WHERE " + ("1 = 1" if everyone else "lease_owner = :node"), params)
            conn.execute("UPDATE nodes SET stopped = :now WHERE name = :node", params)
            if everyone:
                conn.execute("DELETE FROM nodes WHERE name != :node AND name NOT IN "
                             "(SELECT polled_by FROM feeds WHERE polled_by IS NOT NULL)",
                             params)

    def nodes(self, now: float) -> list[NodeState]:
        """Every node that ever beat, with what it holds now, most recent first."""
        with self.db.connect() as conn:
            claimed: dict[str, int] = dict(conn.execute(
                "SELECT lease_owner, count(*) FROM feeds WHERE lease_until >= :now "
                "GROUP BY lease_owner", {"now": now}).tuples())
            polled: dict[str, int] = dict(conn.execute(
                "SELECT polled_by, count(*) FROM feeds WHERE polled_by IS NOT NULL "
                "GROUP BY polled_by").tuples())
            channels: dict[str, list[str]] = {}
            for name, owner in conn.execute(
                    "SELECT name, lease_owner FROM channel_state WHERE lease_until >= :now",
                    {"now": now}).tuples():
                channels.setdefault(owner, []).append(name)
            return [NodeState(
                name=row.name, version=row.version, config_hash=row.config_hash,
                started=row.started, heartbeat=row.heartbeat, lease=row.lease,
                stopped=row.stopped, feeds_claimed=int(claimed.get(row.name, 0)),
                feeds_polled=int(polled.get(row.name, 0)),
                channels=tuple(sorted(channels.get(row.name, ()))))
                for row in conn.execute("SELECT name, version, config_hash, started, "
                                        "heartbeat, lease, stopped FROM nodes "
                                        "ORDER BY heartbeat DESC")]


_ADD_CHANNEL = "INSERT INTO channel_state (name) VALUES (:name) ON CONFLICT DO NOTHING"
