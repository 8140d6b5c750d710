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

SQLite runs the same statements (it ignores `FOR UPDATE`); it has one node.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from notifier.store.records import FeedState, NodeState, PollRecord
from notifier.store.schema import channel_state, feeds, nodes, outbox

__all__ = ["LeaseStore", "lock_for_writing", "new_claim_id"]


def new_claim_id() -> str:
    return uuid.uuid4().hex


_TOKENS = (sa.select(feeds.c.id, feeds.c.lease_owner, feeds.c.lease_token)
           .where(feeds.c.id.in_(sa.bindparam("ids", expanding=True))).order_by(feeds.c.id)
           .with_for_update())
"""Who holds each of some feeds, under which token; built once (a statement with 200 ids
in it, built for every written batch, cost more than its execution)."""


def lock_for_writing(conn: Connection) -> None:
    """On SQLite, take the database's write lock now, before a read the write depends on.

    PostgreSQL locks the rows read (FOR UPDATE); SQLite drops FOR UPDATE, and its driver
    begins a transaction only at the first write, so what was read first (a lease's token,
    which rows are unclaimed) could have been changed by another process meanwhile, unseen:
    a node that lost its lease wrote its poll anyway."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class LeaseStore:
    """The lease half of `Store` (mixed into it); every method is one transaction."""

    engine: Engine

    # Provided by `Store`.
    def _write_polls(self, conn: Connection, records: Iterable[PollRecord],
                     fence: tuple[str, Mapping[int, int]] | None = None) -> int:
        raise NotImplementedError

    def _feed_states_of(self, result: Any) -> list[FeedState]:
        raise NotImplementedError

    def _state_columns(self) -> tuple[Any, ...]:
        """The columns `_feed_states_of` reads, in its order."""
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
        conditions = [sa.or_(feeds.c.lease_until.is_(None), feeds.c.lease_until < now)]
        if feed_ids is not None:
            conditions.append(self._id_in(feed_ids))
        if due_only:
            conditions.append(feeds.c.next_due <= now)
        chosen = (sa.select(feeds.c.id).where(*conditions).order_by(feeds.c.next_due)
                  .limit(limit).with_for_update(skip_locked=True))
        claim = (feeds.update().where(feeds.c.id.in_(chosen.scalar_subquery()))
                 .values(lease_owner=node, lease_until=now + lease,
                         lease_token=feeds.c.lease_token + 1)
                 .returning(*self._state_columns()))
        with self.engine.begin() as conn:
            claimed = self._feed_states_of(conn.execute(claim))
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
        with self.engine.begin() as conn:
            lock_for_writing(conn)
            current: dict[int, tuple[str | None, int]] = {}
            for start in range(0, len(ids), 500):
                rows = conn.execute(_TOKENS, {"ids": ids[start:start + 500]}).all()
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
        values: dict[str, Any] = {"lease_until": None}
        if not_before is not None:
            values["next_due"] = not_before + feeds.c.interval
        with self.engine.begin() as conn:
            for start in range(0, len(wanted), 500):
                conn.execute(feeds.update().where(
                    feeds.c.id.in_(wanted[start:start + 500]), feeds.c.lease_owner == node)
                    .values(**values))

    def _id_in(self, ids: Sequence[int]) -> Any:
        """`feeds.id` among `ids` with one bound parameter, however many ids."""
        values = sorted(set(ids))
        if self.engine.dialect.name == "postgresql":
            # Here: SQLite states never load the PostgreSQL dialect.
            from sqlalchemy.dialects.postgresql import ARRAY

            return feeds.c.id == sa.any_(
                sa.bindparam("feed_ids", values, type_=ARRAY(sa.Integer)))
        listed = sa.func.json_each(sa.bindparam("feed_ids", json.dumps(values))
                                   ).table_valued("value")
        return feeds.c.id.in_(sa.select(listed.c.value))

    # --- channels ------------------------------------------------------------------------

    def lease_channel(self, name: str, node: str, now: float, lease: float
                      ) -> tuple[bool, float | None]:
        """Take or keep delivering to a channel; (whether this node has it, its pause).

        The pause is any time before which a server asked not to be sent more.
        """
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(channel_state), [{"name": name}])
            taken = conn.execute(
                channel_state.update().where(
                    channel_state.c.name == name,
                    sa.or_(channel_state.c.lease_owner == node,
                           channel_state.c.lease_until.is_(None),
                           channel_state.c.lease_until < now))
                .values(lease_owner=node, lease_until=now + lease)
                .returning(channel_state.c.paused_until)).first()
            if taken is not None:
                return True, taken.paused_until
            paused = conn.execute(sa.select(channel_state.c.paused_until)
                                  .where(channel_state.c.name == name)).scalar()
            return False, paused

    def pause_channel(self, name: str, until: float) -> None:
        """Remember for every node that a channel's server asked for a pause."""
        with self.engine.begin() as conn:
            conn.execute(self._insert_ignore(channel_state), [{"name": name}])
            conn.execute(channel_state.update().where(
                channel_state.c.name == name,
                sa.or_(channel_state.c.paused_until.is_(None),
                       channel_state.c.paused_until < until))
                .values(paused_until=until))

    def _insert_ignore(self, table: sa.Table) -> Any:
        insert = cast(Any, self)._insert(table)
        return insert.on_conflict_do_nothing()

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
        with self.engine.begin() as conn:
            row = {"name": node, "version": version, "config_hash": config_hash,
                   "started": started, "heartbeat": now, "lease": lease, "stopped": None}
            insert = cast(Any, self)._insert(nodes)
            conn.execute(insert.on_conflict_do_update(
                index_elements=[nodes.c.name],
                set_={k: insert.excluded[k] for k in row if k != "name"}), [row])
            if feed_ids:
                mine = (sa.select(feeds.c.id)
                        .where(self._id_in(feed_ids), feeds.c.lease_owner == node,
                               feeds.c.lease_until >= now)
                        .with_for_update(skip_locked=True))
                conn.execute(feeds.update().where(feeds.c.id.in_(mine.scalar_subquery()))
                             .values(lease_until=until))
            if claim_ids:
                conn.execute(outbox.update().where(outbox.c.claim_id.in_(list(claim_ids)),
                                                   outbox.c.claim_owner == node,
                                                   outbox.c.claimed_until >= now)
                             .values(claimed_until=until))

    def release_stranded(self, node: str, taken_before: float, claims: Collection[str]) -> None:
        """Give back `node`'s outbox claims that run out by `taken_before` (taken before the
        state failed, so never renewed since), except those it still works on (`claims`): a
        claim taken later runs out later, so none is given back while in use.

        Feed leases are left to run out: a feed whose poll could not be written is due at
        once, and giving it back now would ask its server again within a second."""
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(
                outbox.c.claim_owner == node, outbox.c.claimed_until.is_not(None),
                outbox.c.claimed_until <= taken_before,
                outbox.c.claim_id.not_in(list(claims)) if claims else sa.true())
                .values(claimed_until=None))

    def release_node(self, node: str, now: float, everyone: bool = False) -> None:
        """Give back what `node` holds (at its stop, or at start after a crash), so that
        others need not wait for the lease; `everyone` when the database has one node.

        Then (`everyone`) every other node is a process gone for good, and those that are
        no feed's last poller are forgotten: each `run --once` is a node of its own (host
        name and process id), and `status` listed every one that ever ran."""
        def owned(column: Any) -> Any:
            return sa.true() if everyone else column == node

        with self.engine.begin() as conn:
            conn.execute(feeds.update().where(owned(feeds.c.lease_owner),
                                              feeds.c.lease_until.is_not(None))
                         .values(lease_until=None))
            conn.execute(outbox.update().where(outbox.c.claimed_until.is_not(None),
                                               owned(outbox.c.claim_owner))
                         .values(claimed_until=None))
            conn.execute(channel_state.update().where(owned(channel_state.c.lease_owner))
                         .values(lease_until=None, lease_owner=None))
            conn.execute(nodes.update().where(nodes.c.name == node).values(stopped=now))
            if everyone:
                pollers = sa.select(feeds.c.polled_by).where(feeds.c.polled_by.is_not(None))
                conn.execute(nodes.delete().where(nodes.c.name != node,
                                                  nodes.c.name.not_in(pollers)))

    def nodes(self, now: float) -> list[NodeState]:
        """Every node that ever beat, with what it holds now, most recent first."""
        with self.engine.connect() as conn:
            claimed: dict[str, int] = dict(conn.execute(
                sa.select(feeds.c.lease_owner, sa.func.count())
                .where(feeds.c.lease_until >= now).group_by(feeds.c.lease_owner)).all())
            polled: dict[str, int] = dict(conn.execute(
                sa.select(feeds.c.polled_by, sa.func.count())
                .where(feeds.c.polled_by.is_not(None)).group_by(feeds.c.polled_by)).all())
            channels: dict[str, list[str]] = {}
            for row in conn.execute(sa.select(channel_state.c.name, channel_state.c.lease_owner)
                                    .where(channel_state.c.lease_until >= now)):
                channels.setdefault(row.lease_owner, []).append(row.name)
            return [NodeState(
                name=row.name, version=row.version, config_hash=row.config_hash,
                started=row.started, heartbeat=row.heartbeat, lease=row.lease,
                stopped=row.stopped, feeds_claimed=int(claimed.get(row.name, 0)),
                feeds_polled=int(polled.get(row.name, 0)),
                channels=tuple(sorted(channels.get(row.name, ()))))
                for row in conn.execute(sa.select(nodes).order_by(nodes.c.heartbeat.desc()))]
