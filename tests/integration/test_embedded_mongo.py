"""The embedded MongoDB as the services use it: transactions are isolated from each
other and roll back, and a transaction's read concern leaves no trace."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pymongo
import pytest
from pymongo.read_concern import ReadConcern

from tests.support.processes import EmbeddedMongo, unique


@pytest.fixture
def db(mongo: EmbeddedMongo) -> Iterator[pymongo.database.Database]:
    client: pymongo.MongoClient = pymongo.MongoClient(mongo.url)
    yield client[unique("db")]
    client.close()


def test_concurrent_read_modify_write_transactions_lose_no_update(db: pymongo.database.Database) -> None:
    db.counter.insert_one({"_id": "c", "n": 0})
    client = db.client

    def increment(times: int) -> None:
        for _ in range(times):
            with client.start_session() as session, session.start_transaction():
                n = db.counter.find_one({"_id": "c"}, session=session)["n"]
                db.counter.update_one({"_id": "c"}, {"$set": {"n": n + 1}}, session=session)

    workers = [threading.Thread(target=increment, args=(20,)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert db.counter.find_one({"_id": "c"})["n"] == 120


def test_aborted_transaction_leaves_nothing(db: pymongo.database.Database) -> None:
    client = db.client
    db.create_collection("orders")  # services create theirs (with indexes) at start-up
    with client.start_session() as session:
        session.start_transaction()
        db.orders.insert_one({"_id": 1}, session=session)
        session.abort_transaction()
    assert db.orders.count_documents({}) == 0


def test_snapshot_read_concern_is_not_stored_as_a_document(db: pymongo.database.Database) -> None:
    client = db.client
    with client.start_session() as session, session.start_transaction(read_concern=ReadConcern("snapshot")):
        db.orders.insert_one({"_id": 1}, session=session)
    assert list(db.orders.find()) == [{"_id": 1}]


def test_write_outside_a_transaction_waits_and_is_not_rolled_back_with_it(
    db: pymongo.database.Database,
) -> None:
    client = db.client
    session = client.start_session()
    session.start_transaction()
    db.orders.insert_one({"_id": "in-txn"}, session=session)
    outside = threading.Thread(target=lambda: db.orders.insert_one({"_id": "outside"}))
    outside.start()
    session.abort_transaction()
    session.end_session()
    outside.join(timeout=10)
    assert [d["_id"] for d in db.orders.find()] == ["outside"]
