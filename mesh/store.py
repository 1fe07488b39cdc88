"""MongoDB access: one database per service, and a unit of work that wraps a
multi-document transaction (commit explicitly, roll back by default)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from mesh.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
Document = dict[str, Any]


def is_transient(exc: PyMongoError) -> bool:
    """A conflict or an unknown commit outcome: the transaction may simply be run again."""
    return exc.has_error_label("TransientTransactionError") or exc.has_error_label(
        "UnknownTransactionCommitResult"
    )


def backoff(attempt: int) -> None:
    """A short jittered pause before attempt `attempt + 1`, so that contending
    transactions spread out instead of colliding again."""
    time.sleep(random.uniform(0, min(0.002 * attempt, 0.05)))


class UnitOfWork:
    """One MongoDB transaction. Use `uow.session` on every read and write inside it;
    call `commit()` to keep the changes; leaving the block without it rolls back.
    Callbacks registered with `before_commit` run inside the transaction just before
    it commits (deferred writes: if one raises, nothing commits); those registered
    with `after_commit` run once the commit has succeeded."""

    def __init__(self, client: MongoClient[Document], db: Database[Document]) -> None:
        self._client = client
        self.db = db
        self.session: ClientSession = client.start_session()
        self._committed = False
        self._before_commit: list[Callable[[], None]] = []
        self._after_commit: list[Callable[[], None]] = []

    def __enter__(self) -> UnitOfWork:
        self.session.start_transaction(
            read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
        )
        return self

    def commit(self) -> None:
        for deferred in self._before_commit:
            deferred()
        self.session.commit_transaction()
        self._committed = True
        for callback in self._after_commit:
            try:
                callback()
            except Exception:  # a hook must never undo a committed transaction
                log.exception("after-commit hook failed")

    def before_commit(self, callback: Callable[[], None]) -> None:
        self._before_commit.append(callback)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.session.in_transaction and not self._committed:
                self.session.abort_transaction()
        except PyMongoError:
            log.warning("abort_transaction failed", exc_info=True)
        finally:
            self.session.end_session()


class Store:
    """A service's MongoDB database."""

    def __init__(self, url: str, database: str, timeout_ms: int = 2000) -> None:
        self.client: MongoClient[Document] = MongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 5, 10000),
            tz_aware=True,
        )
        self.db: Database[Document] = self.client[database]

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.client, self.db)

    def transaction(self, work: Callable[[UnitOfWork], T], attempts: int = 5) -> T:
        """Run `work` in a unit of work and commit it, retrying transient conflicts
        (`is_transient`) after a jittered `backoff`; `work` must be safe to re-run."""
        for attempt in range(1, attempts + 1):
            try:
                with self.unit_of_work() as uow:
                    result = work(uow)
                    uow.commit()
                    return result
            except PyMongoError as exc:
                if not is_transient(exc) or attempt == attempts:
                    raise
                log.info("retrying transient transaction failure", extra={"attempt": attempt})
            backoff(attempt)
        raise AssertionError("unreachable")

    def ping(self) -> bool:
        """True when the server answers (health checks)."""
        try:
            self.client.admin.command("ping")
            return True
        except (ConnectionFailure, ServerSelectionTimeoutError):
            return False
        except PyMongoError:
            return False

    def close(self) -> None:
        self.client.close()


def unavailable_on_connection_errors(exc: BaseException) -> BaseException:
    """Map a lost database connection to UNAVAILABLE (the client may retry)."""
    if isinstance(exc, ConnectionFailure | ServerSelectionTimeoutError):
        return Unavailable("database unavailable")
    return exc
