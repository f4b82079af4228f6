"""SQLite state of the emulator: queues, tasks, name reservations and IAM policies.

Protobufs are stored serialized, next to the few columns queries need (queue, schedule time,
in-flight flag). One connection behind one lock: every operation is a short transaction, so the
gRPC thread pool and the dispatcher workers can share it. With a data directory the database runs
in WAL mode with synchronous=NORMAL: a committed transaction is in the WAL before the RPC answers,
so it survives ``kill -9`` of the emulator (not a power cut, which the emulator does not promise).

The temporary store promises nothing across a crash, so it writes CreateTask rows behind: they wait
in memory and the next store operation (any read or write) inserts them in one transaction first.
A create then runs no SQL at all, which matters because every ``sqlite3`` call hands the GIL to
another thread and back. Its checks stay exact: the store keeps the set of queue names, and a Bloom
filter of every name that may be taken (a task or a reservation; rebuilt from the tables when full);
only a name the filter may know goes to the SQL checks.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from google.cloud import tasks_v2
from google.protobuf.timestamp_pb2 import Timestamp

from .name_filter import NameFilter

log = logging.getLogger("cloudtasks_emulator.store")

Task = tasks_v2.Task.pb()
Queue = tasks_v2.Queue.pb()

DB_FILE_NAME = "emulator.sqlite3"
_INSERT_ROW = "INSERT INTO tasks (name, queue, seq, schedule, created, data) VALUES (?, ?, ?, ?, ?, ?)"
MAX_WRITE_BEHIND = 1000  # rows of the temporary store waiting for the next store operation
MIN_NAME_FILTER_CAPACITY = 1 << 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    seq INTEGER NOT NULL,
    schedule REAL NOT NULL,
    created REAL NOT NULL,
    in_flight INTEGER NOT NULL DEFAULT 0,
    exec_count INTEGER NOT NULL DEFAULT 0,
    prev_response TEXT NOT NULL DEFAULT '',
    retry_reason TEXT NOT NULL DEFAULT '',
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (queue, in_flight, schedule);
CREATE TABLE IF NOT EXISTS reservations (name TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS iam (resource TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


@dataclass
class Claim:
    """A task taken for one dispatch attempt, with the dispatch bookkeeping the headers need."""

    name: str
    queue: str
    seq: int
    task: Task  # type: ignore[valid-type]
    exec_count: int
    prev_response: str
    retry_reason: str
    dispatch_time: Timestamp


class Store:
    def __init__(self, data_dir: str | None = None) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="cloudtasks-emulator-")
            directory, durable = self._tempdir.name, False
        else:
            os.makedirs(data_dir, mode=0o700, exist_ok=True)
            directory, durable = data_dir, True
        self.path = os.path.join(directory, DB_FILE_NAME)
        # Task bodies and headers may hold secrets: owner-only, whatever the umask (SQLite gives its
        # -wal/-shm files the database file's mode).
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(self.path, 0o600)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if durable:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: commits reach the WAL (OS page cache) before returning: safe against a killed
            # process.
            self._db.execute("PRAGMA synchronous=NORMAL")
        else:
            # A throwaway temp database, private to this process, needs no durability at all: an
            # in-memory rollback journal (transactions still roll back) and one exclusive lock held
            # for the connection's life (no file locking per statement) halve the cost of a write.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        # Attempts that were in flight when the process died never completed: dispatch them again.
        self._db.execute("UPDATE tasks SET in_flight = 0 WHERE in_flight = 1")
        row = self._db.execute("SELECT MAX(seq) FROM tasks").fetchone()
        self._seq = row[0] or 0
        self._write_behind = not durable
        self._pending: list[tuple] = []  # task rows not yet inserted (temp store)
        self._queues = {r[0] for r in self._db.execute("SELECT name FROM queues")}
        self._maybe_taken = NameFilter(1)
        if self._write_behind:
            self._rebuild_taken(0.0)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, which first inserts the rows written behind."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                pending = self._insert_pending()
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if pending:
                self._pending = []  # only once committed: a rolled-back flush is tried again

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            self._flush()
            return self._db.execute(sql, args).fetchall()

    def _flush(self) -> None:
        if self._pending:
            with self._tx():
                pass

    def _insert_pending(self) -> bool:
        """Inside a transaction: insert the rows written behind (they are not cleared here)."""
        if not self._pending:
            return False
        try:
            self._db.executemany(_INSERT_ROW, self._pending)
        except sqlite3.IntegrityError:  # a broken invariant must cost nothing but this log line
            log.error("a task written behind was already stored; keeping the stored one")
            self._db.executemany(_INSERT_ROW.replace("INSERT", "INSERT OR IGNORE", 1), self._pending)
        return True

    def _rebuild_taken(self, now: float) -> None:
        """Recompute ``_maybe_taken`` from the tables (lock held, nothing pending)."""
        live = "SELECT name FROM tasks UNION ALL SELECT name FROM reservations WHERE expires > ?"
        count = self._db.execute(f"SELECT COUNT(*) FROM ({live})", (now,)).fetchone()[0]
        rows = self._db.execute(live, (now,))
        self._maybe_taken = NameFilter.of((r[0] for r in rows), count, MIN_NAME_FILTER_CAPACITY)

    def _may_be_taken(self, names: list[str]) -> None:
        if self._write_behind:
            for name in names:
                self._maybe_taken.add(name)

    # --- Reservations ----------------------------------------------------------------------------

    def reserved(self, name: str, now: float) -> bool:
        rows = self._query("SELECT 1 FROM reservations WHERE name = ? AND expires > ?", (name, now))
        return bool(rows)

    def _reserve(self, db: sqlite3.Connection, names: list[str], until: float) -> None:
        self._may_be_taken(names)
        db.executemany(
            "INSERT OR REPLACE INTO reservations (name, expires) VALUES (?, ?)", [(n, until) for n in names]
        )

    # --- Queues ----------------------------------------------------------------------------------

    def get_queue(self, name: str) -> Queue | None:  # type: ignore[valid-type]
        rows = self._query("SELECT data FROM queues WHERE name = ?", (name,))
        return Queue.FromString(rows[0][0]) if rows else None

    # The set of queue names gains a name only after the commit, and loses one before it (lock held
    # throughout): at worst a create takes the SQL path, never a queue that is not there.

    def put_queue(self, queue: Queue) -> None:  # type: ignore[valid-type]
        with self._lock:
            with self._tx() as db:
                db.execute("INSERT OR REPLACE INTO queues (name, data) VALUES (?, ?)",
                           (queue.name, queue.SerializeToString()))
            self._queues.add(queue.name)

    def create_queue(self, queue: Queue, now: float) -> str | None:  # type: ignore[valid-type]
        """Insert ``queue``; "exists" or "reserved" (deleted recently) when it cannot be."""
        with self._lock:
            with self._tx() as db:
                if db.execute("SELECT 1 FROM queues WHERE name = ?", (queue.name,)).fetchone():
                    return "exists"
                if db.execute("SELECT 1 FROM reservations WHERE name = ? AND expires > ?",
                              (queue.name, now)).fetchone():
                    return "reserved"
                db.execute("INSERT INTO queues (name, data) VALUES (?, ?)", (queue.name, queue.SerializeToString()))
            self._queues.add(queue.name)
            return None

    def list_queues(self, location: str, after: str, limit: int) -> list[Queue]:  # type: ignore[valid-type]
        rows = self._query(
            "SELECT data FROM queues WHERE name > ? AND name LIKE ? ESCAPE '\\' ORDER BY name LIMIT ?",
            (after, _like_prefix(location + "/queues/"), limit),
        )
        return [Queue.FromString(r[0]) for r in rows]

    def all_queues(self) -> list[Queue]:  # type: ignore[valid-type]
        return [Queue.FromString(r[0]) for r in self._query("SELECT data FROM queues ORDER BY name")]

    def delete_queue(self, name: str, reserve_until: float) -> bool:
        with self._tx() as db:
            self._queues.discard(name)
            if db.execute("DELETE FROM queues WHERE name = ?", (name,)).rowcount == 0:
                return False
            db.execute("DELETE FROM tasks WHERE queue = ?", (name,))
            db.execute("DELETE FROM iam WHERE resource = ?", (name,))
            self._reserve(db, [name], reserve_until)
            return True

    def purge(self, queue: Queue, created_before: float, reserve_until: float) -> None:  # type: ignore[valid-type]
        """Delete the queue's tasks created before ``created_before`` and store ``queue`` (its purge_time)."""
        with self._tx() as db:
            names = [r[0] for r in db.execute(
                "SELECT name FROM tasks WHERE queue = ? AND created < ?", (queue.name, created_before)
            )]
            db.execute("DELETE FROM tasks WHERE queue = ? AND created < ?", (queue.name, created_before))
            self._reserve(db, names, reserve_until)
            db.execute("UPDATE queues SET data = ? WHERE name = ?", (queue.SerializeToString(), queue.name))

    # --- Tasks -----------------------------------------------------------------------------------

    _INSERT_TASK = (
        "INSERT INTO tasks (name, queue, seq, schedule, created, data) SELECT ?, ?, ?, ?, ?, ? "
        "WHERE EXISTS (SELECT 1 FROM queues WHERE name = ?) "
        "AND NOT EXISTS (SELECT 1 FROM reservations WHERE name = ? AND expires > ?)"
    )

    def create_task(self, task: Task, queue: str, created: float, now: float, *,  # type: ignore[valid-type]
                    prepare: Callable[[Queue | None], float], with_queue: bool = False,  # type: ignore[valid-type]
                    auto_queue: Queue | None = None) -> str | None:  # type: ignore[valid-type]
        """Insert ``task`` into ``queue``; "exists", "reserved" or "no-queue" when it cannot be.

        ``prepare(queue)`` completes the task before it is stored and returns its schedule time (epoch
        seconds); it gets the stored queue when ``with_queue`` (read in the same transaction as the
        insert), else None. ``auto_queue`` is inserted when the queue is missing, instead of "no-queue".
        The common case (neither) needs no transaction: on the temporary store the row is written
        behind (see the module's docstring), else a single autocommit INSERT whose conditions check
        the queue and the name reservation; a taken name shows as a primary-key violation. Either way
        the task is visible to every store operation once this returns."""
        prepared: tuple[float, bytes] | None = None
        if not with_queue:
            prepared = (prepare(None), task.SerializeToString())
            with self._lock:
                if self._write_behind and queue in self._queues and self._maybe_taken.add_if_new(task.name):
                    self._seq += 1
                    self._pending.append((task.name, queue, self._seq, prepared[0], created, prepared[1]))
                    if len(self._pending) >= MAX_WRITE_BEHIND:
                        self._flush()
                    if self._maybe_taken.full:
                        self._flush()
                        self._rebuild_taken(now)
                    return None
                if auto_queue is None:
                    self._flush()
                    return self._insert_task(self._db, task.name, queue, prepared[0], created, now, prepared[1])
        with self._tx() as db:
            row = db.execute("SELECT data FROM queues WHERE name = ?", (queue,)).fetchone()
            stored: Queue | None = None  # type: ignore[valid-type]
            if row is None:
                if auto_queue is None:
                    return "no-queue"
                # Auto-creation ignores the queue name's reservation.
                db.execute("INSERT INTO queues (name, data) VALUES (?, ?)", (queue, auto_queue.SerializeToString()))
                stored = auto_queue
            elif with_queue:
                stored = Queue.FromString(row[0])
            schedule, data = prepared or (prepare(stored), task.SerializeToString())
            outcome = self._insert_task(db, task.name, queue, schedule, created, now, data)
        if row is None:
            with self._lock:
                self._queues.add(queue)
        return outcome

    def _insert_task(self, db: sqlite3.Connection, name: str, queue: str, schedule: float, created: float,
                     now: float, data: bytes) -> str | None:
        """The task row, if its queue exists and its name is neither taken nor reserved (lock held)."""
        self._seq += 1  # a failed insert leaves a gap: seq only has to be unique and increasing
        try:
            inserted = db.execute(self._INSERT_TASK, (name, queue, self._seq, schedule, created, data,
                                                      queue, name, now)).rowcount
        except sqlite3.IntegrityError as exc:
            if "tasks.name" not in str(exc):
                raise
            return "exists"
        if inserted:
            self._may_be_taken([name])
            return None
        # Not inserted: say why, in the order the service checks (queue, name taken, reservation).
        has_queue, exists = db.execute(
            "SELECT EXISTS (SELECT 1 FROM queues WHERE name = ?), EXISTS (SELECT 1 FROM tasks WHERE name = ?)",
            (queue, name)).fetchone()
        if not has_queue:
            return "no-queue"
        return "exists" if exists else "reserved"

    def get_task(self, name: str) -> Task | None:  # type: ignore[valid-type]
        rows = self._query("SELECT data FROM tasks WHERE name = ?", (name,))
        return Task.FromString(rows[0][0]) if rows else None

    def list_tasks(self, queue: str, after: str, limit: int) -> list[Task]:  # type: ignore[valid-type]
        rows = self._query(
            "SELECT data FROM tasks WHERE queue = ? AND name > ? ORDER BY name LIMIT ?", (queue, after, limit)
        )
        return [Task.FromString(r[0]) for r in rows]

    def delete_task(self, name: str, reserve_until: float) -> bool:
        with self._tx() as db:
            if db.execute("DELETE FROM tasks WHERE name = ?", (name,)).rowcount == 0:
                return False
            self._reserve(db, [name], reserve_until)
            return True

    # --- Dispatch --------------------------------------------------------------------------------

    def next_due(self, queue: str) -> float | None:
        """Earliest schedule time of the queue's tasks that are not in flight."""
        rows = self._query("SELECT MIN(schedule) FROM tasks WHERE queue = ? AND in_flight = 0", (queue,))
        return rows[0][0]

    def claim_due(self, queue: str, now: float, limit: int, dispatch_time: Timestamp) -> list[Claim]:
        """Take up to ``limit`` due tasks of ``queue`` for dispatch (earliest first)."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT name, seq, data, exec_count, prev_response, retry_reason FROM tasks "
                "WHERE queue = ? AND in_flight = 0 AND schedule <= ? ORDER BY schedule LIMIT ?",
                (queue, now, limit),
            ).fetchall()
            return [self._claim_row(db, queue, row, dispatch_time) for row in rows]

    def claim(self, name: str, dispatch_time: Timestamp) -> Claim | None | str:
        """Take one task now whatever its schedule (RunTask); "in-flight" when it already is."""
        with self._tx() as db:
            row = db.execute(
                "SELECT name, seq, data, exec_count, prev_response, retry_reason, queue, in_flight "
                "FROM tasks WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return None
            if row[7]:
                return "in-flight"
            return self._claim_row(db, row[6], row[:6], dispatch_time)

    @staticmethod
    def _claim_row(db: sqlite3.Connection, queue: str, row: tuple, dispatch_time: Timestamp) -> Claim:
        name, seq, data, exec_count, prev_response, retry_reason = row
        task = Task.FromString(data)
        task.dispatch_count += 1  # the service counts an attempt as soon as it is in flight
        if not task.HasField("first_attempt"):
            task.first_attempt.dispatch_time.CopyFrom(dispatch_time)
        db.execute("UPDATE tasks SET in_flight = 1, data = ? WHERE name = ?", (task.SerializeToString(), name))
        return Claim(name, queue, seq, task, exec_count, prev_response, retry_reason, dispatch_time)

    def finish(self, claim: Claim, task: Task, *, done: bool, reserve_until: float = 0.0,  # type: ignore[valid-type]
               schedule: float = 0.0, exec_count: int = 0, prev_response: str = "", retry_reason: str = "") -> None:
        """Record an attempt's outcome: ``done`` deletes the task and reserves its name in the same
        transaction (so a success is never dispatched again); otherwise it is rescheduled.
        Nothing happens when the task was deleted (or purged) while in flight."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM tasks WHERE name = ? AND seq = ?", (claim.name, claim.seq)).fetchone():
                return
            if done:
                db.execute("DELETE FROM tasks WHERE name = ?", (claim.name,))
                self._reserve(db, [claim.name], reserve_until)
            else:
                db.execute(
                    "UPDATE tasks SET in_flight = 0, schedule = ?, exec_count = ?, prev_response = ?, "
                    "retry_reason = ?, data = ? WHERE name = ?",
                    (schedule, exec_count, prev_response, retry_reason, task.SerializeToString(), claim.name),
                )

    # --- IAM -------------------------------------------------------------------------------------

    def get_iam(self, resource: str) -> bytes | None:
        rows = self._query("SELECT data FROM iam WHERE resource = ?", (resource,))
        return rows[0][0] if rows else None

    def put_iam(self, resource: str, data: bytes) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO iam (resource, data) VALUES (?, ?)", (resource, data))


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
