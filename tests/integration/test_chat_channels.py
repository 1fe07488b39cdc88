"""Contact-centre channels through real chat_svc processes on the shared broker:
each channel's inbound work goes to its own durable queue, competing workers
(prefetch 1) handle each item once, a worker killed mid-item loses nothing, and a
subscription filtered by channel sees only that channel, replayed and live."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
from pymongo import MongoClient
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.client import ChatClient, Follower
from chat_svc.repository import CHANNEL_WORK
from mesh.processes import wait_until
from mesh.store import Document
from tests.integration.test_chat_streams import start_chat
from tests.support.processes import EmbeddedMongo, ServiceProcess


@pytest.fixture
def channel_work(mongo: EmbeddedMongo, isolation: dict[str, str]) -> Iterator[Callable[[], list[Document]]]:
    """The routing records the channel workers wrote (one per handled message)."""
    client: MongoClient[Document] = MongoClient(mongo.url)

    def records() -> list[Document]:
        return list(client[isolation["MONGO_DB"]][CHANNEL_WORK].find({}))

    yield records
    client.close()


@pytest.fixture
def followers() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.stop()


def queue_of(isolation: dict[str, str], channel: str) -> str:
    return f"{isolation['QUEUE_PREFIX']}chat.channel.{channel}"


def rabbitmqctl(*args: str) -> list[list[str]]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "--no-table-headers", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def queue_counts(prefix: str) -> dict[str, tuple[int, int]]:
    """Queue name → (ready, unacked), read from the broker itself (no stats delay)."""
    rows = rabbitmqctl("list_queues", "name", "messages_ready", "messages_unacknowledged")
    return {row[0]: (int(row[1]), int(row[2])) for row in rows if row[0].startswith(prefix)}


def consumers_of(queue: str) -> list[int]:
    """The prefetch count of each consumer of `queue`."""
    rows = rabbitmqctl("list_consumers", "queue_name", "prefetch_count")
    return [int(row[1]) for row in rows if row[0] == queue]


def tickets_answered(client: ChatClient, room_id: str) -> list[pb.Message]:
    return [m for m in client.history(room_id, 100) if m.kind == pb.MESSAGE_KIND_SYSTEM]


def test_messages_on_two_channels_wait_in_two_durable_queues(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], isolation: dict[str, str]
) -> None:
    # no workers on this replica: the queues exist anyway, and hold the work for later
    chat = start_chat(start_service, CHAT_CHANNEL_WORKERS="0")
    alice = ChatClient(chat.target, token("alice", "customer"))
    room = alice.create_group("desk")
    alice.send(room.id, "call offer", channel=pb.CHANNEL_VOICE)
    alice.send(room.id, "call answer", channel=pb.CHANNEL_VOICE)
    alice.send(room.id, "my printer is on fire", channel=pb.CHANNEL_TICKETS)
    voice, tickets, text = (queue_of(isolation, c) for c in ("voice", "tickets", "chat"))
    expected = {voice: (2, 0), tickets: (1, 0), text: (0, 0)}
    assert wait_until(
        lambda: {q: queue_counts(isolation["QUEUE_PREFIX"]).get(q) for q in expected} == expected, 20, 0.5
    ), queue_counts(isolation["QUEUE_PREFIX"])
    kinds = {row[0]: row[1:] for row in rabbitmqctl("list_queues", "name", "durable", "type")}
    assert kinds[voice] == kinds[tickets] == ["true", "quorum"]


def test_two_workers_on_one_channel_compete_and_handle_each_ticket_once(
    start_service: Callable[..., ServiceProcess],
    token: Callable[..., str],
    isolation: dict[str, str],
    channel_work: Callable[[], list[Document]],
) -> None:
    # each item is held a moment, so both workers have work in hand at the same time
    one = start_chat(start_service, CHAT_CHANNEL_DELAY_S="0.1")
    two = start_chat(start_service, CHAT_CHANNEL_DELAY_S="0.1")
    tickets = queue_of(isolation, "tickets")
    assert wait_until(lambda: consumers_of(tickets) == [1, 1], 20, 0.5), consumers_of(tickets)
    alice = ChatClient(one.target, token("alice", "customer"))
    room = alice.create_group("desk")
    sent = [alice.send(room.id, f"ticket {i}", channel=pb.CHANNEL_TICKETS) for i in range(10)]
    assert wait_until(lambda: len(channel_work()) == 10, 30, 0.2), channel_work()
    records = channel_work()
    assert sorted(r["_id"] for r in records) == sorted(m.message_id for m in sent)  # each once
    assert sorted(r["ticket_number"] for r in records) == list(range(1, 11))
    assert len({r["worker_id"].split("/")[0] for r in records}) == 2  # both replicas took work
    reader = ChatClient(two.target, alice.token)
    assert wait_until(lambda: len(tickets_answered(reader, room.id)) == 10, 10)
    answers = tickets_answered(reader, room.id)
    assert {m.channel for m in answers} == {pb.CHANNEL_TICKETS}
    assert sorted(int(m.body.split("#")[1].split()[0]) for m in answers) == list(range(1, 11))


def test_worker_killed_mid_ticket_leaves_it_to_another_that_handles_it_once(
    start_service: Callable[..., ServiceProcess],
    token: Callable[..., str],
    isolation: dict[str, str],
    channel_work: Callable[[], list[Document]],
) -> None:
    stuck = start_chat(start_service, CHAT_CHANNEL_DELAY_S="120")  # takes the ticket, never finishes
    alice = ChatClient(stuck.target, token("alice", "customer"))
    room = alice.create_group("desk")
    ticket = alice.send(room.id, "help", channel=pb.CHANNEL_TICKETS)
    tickets = queue_of(isolation, "tickets")
    assert wait_until(lambda: queue_counts(isolation["QUEUE_PREFIX"]).get(tickets) == (0, 1), 20, 0.5)
    stuck.kill()
    assert channel_work() == []
    rescuer = start_chat(start_service)
    assert wait_until(lambda: len(channel_work()) == 1, 30, 0.2)
    assert wait_until(lambda: queue_counts(isolation["QUEUE_PREFIX"]).get(tickets) == (0, 0), 20, 0.5)
    (record,) = channel_work()
    assert record["_id"] == ticket.message_id and record["ticket_number"] == 1
    survivor = ChatClient(rescuer.target, alice.token)
    assert [m.body for m in tickets_answered(survivor, room.id)] == [
        "Ticket #1 received (message #1); we will answer here."
    ]


def test_ticket_answer_reaches_only_who_the_ticket_reached(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    chat = start_chat(start_service)
    alice, bob, carol = (ChatClient(chat.target, token(u, "customer")) for u in ("alice", "bob", "carol"))
    room = alice.create_group("desk", ["bob", "carol"])
    alice.send(
        room.id,
        "private ticket",
        channel=pb.CHANNEL_TICKETS,
        audience=pb.Audience(kind=pb.AUDIENCE_KIND_MEMBER, recipient_ids=["bob"]),
    )
    assert wait_until(lambda: len(tickets_answered(alice, room.id)) == 1, 20, 0.2)
    assert len(tickets_answered(bob, room.id)) == 1
    assert carol.history(room.id) == []


def test_subscription_filtered_to_voice_sees_only_voice_replayed_and_live(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str], followers: list[Follower]
) -> None:
    chat = start_chat(start_service, CHAT_GAP_CHECK_S="0.3")
    alice = ChatClient(chat.target, token("alice", "customer"))
    room = alice.create_group("desk", ["bob"])
    for channel, body in ((pb.CHANNEL_CHAT, "hello"), (pb.CHANNEL_VOICE, "offer"), (pb.CHANNEL_CHAT, "bye")):
        alice.send(room.id, body, channel=channel)
    bob = Follower(
        targets=[chat.target],
        token=token("bob", "customer"),
        room_ids=[room.id],
        positions={room.id: 0},
        channels=[pb.CHANNEL_VOICE],
    )
    followers.append(bob.start())
    assert bob.wait_subscribed(10)
    assert bob.bodies() == ["offer"]  # the replay, filtered
    assert bob.positions[room.id] == 3  # past the filtered messages: nothing looks lost
    alice.send(room.id, "live chat", channel=pb.CHANNEL_CHAT)
    alice.send(room.id, "live ticket", channel=pb.CHANNEL_TICKETS)
    alice.send(room.id, "answer", channel=pb.CHANNEL_VOICE)
    assert wait_until(lambda: bob.bodies() == ["offer", "answer"], 10)
    assert {m.channel for m in bob.messages} == {pb.CHANNEL_VOICE}
    assert bob.errors == []
