"""filerelay.db.group_commit on a real SQLite file: works that wait behind a leader share its next
transaction, each gets its own outcome, and one failure stays with its work."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import IntegrityError, OperationalError

from filerelay.db.group_commit import GroupCommit
from filerelay.db.session import make_engine
from tests.support.relay import wait_until


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'group.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
    yield engine
    engine.dispose()


def commits(engine: Engine) -> list[int]:
    counted: list[int] = []
    event.listen(engine, "commit", lambda _connection: counted.append(1))
    return counted


def insert(key: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.exec_driver_sql("INSERT INTO t VALUES (?)", (key,))
        return f"stored {key}"

    return work


def keys(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(row[0] for row in connection.exec_driver_sql("SELECT k FROM t"))


class Behind:
    """A leader held inside its own work while `works` queue behind it; then let go. Each thread's
    outcome (its value, or the exception it raised) by key."""

    def __init__(self, group: GroupCommit, works: dict[str, Callable[[Connection], str]]) -> None:
        self.outcomes: dict[str, object] = {}
        entered, self._release = threading.Event(), threading.Event()

        def leader(connection: Connection) -> str:
            entered.set()
            self._release.wait(30)
            return insert("leader")(connection)

        self._threads = [threading.Thread(target=self._run, args=(group, "leader", leader))]
        self._threads[0].start()
        entered.wait(30)
        for key, work in works.items():
            self._threads.append(threading.Thread(target=self._run, args=(group, key, work)))
            self._threads[-1].start()
        wait_until(lambda: group.queued == len(works), what="every work queued behind the leader")

    def _run(self, group: GroupCommit, key: str, work: Callable[[Connection], str]) -> None:
        try:
            self.outcomes[key] = group.run(work)
        except Exception as exc:
            self.outcomes[key] = exc

    def finish(self) -> dict[str, object]:
        self._release.set()
        for thread in self._threads:
            thread.join(30)
        return self.outcomes


def test_works_waiting_behind_the_leader_are_committed_in_one_transaction(engine: Engine) -> None:
    counted = commits(engine)
    outcomes = Behind(GroupCommit(engine), {k: insert(k) for k in "abcde"}).finish()
    assert outcomes == {"leader": "stored leader", **{k: f"stored {k}" for k in "abcde"}}
    assert keys(engine) == ["a", "b", "c", "d", "e", "leader"]
    assert len(counted) == 2  # the leader's own transaction, then one for the five behind it


def test_a_group_larger_than_the_limit_is_written_in_several_transactions(engine: Engine) -> None:
    counted = commits(engine)
    outcomes = Behind(GroupCommit(engine, max_group=2), {k: insert(k) for k in "abcde"}).finish()
    assert sorted(outcomes) == ["a", "b", "c", "d", "e", "leader"]
    assert len(keys(engine)) == 6
    assert len(counted) == 1 + 3


def test_a_work_that_fails_in_a_group_fails_alone(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES ('taken')")
    works = {"a": insert("a"), "dup": insert("taken"), "b": insert("b")}
    outcomes = Behind(GroupCommit(engine), works).finish()
    assert isinstance(outcomes.pop("dup"), IntegrityError)
    assert outcomes == {"leader": "stored leader", "a": "stored a", "b": "stored b"}
    assert keys(engine) == ["a", "b", "leader", "taken"]


def test_a_failed_commit_fails_every_work_of_its_group_and_keeps_none(engine: Engine) -> None:
    refused: list[int] = []

    def refuse_the_second_commit(_connection: Connection) -> None:
        refused.append(1)
        if len(refused) == 2:
            raise OperationalError("COMMIT", {}, ConnectionResetError("server closed the connection"))

    event.listen(engine, "commit", refuse_the_second_commit)
    outcomes = Behind(GroupCommit(engine), {k: insert(k) for k in "abc"}).finish()
    assert outcomes.pop("leader") == "stored leader"
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes.values()), outcomes
    assert keys(engine) == ["leader"]


def test_a_lone_work_runs_in_its_own_transaction_without_savepoint(engine: Engine) -> None:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert GroupCommit(engine).run(insert("alone")) == "stored alone"
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    assert keys(engine) == ["alone"]
