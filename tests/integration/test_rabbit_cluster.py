"""The three-node RabbitMQ cluster fixture, beside the machine's default node: it
forms one cluster, replicates a quorum queue over the three nodes, keeps a confirmed
message through a kill -9 of the queue's leader, and leaves nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest

from mesh.bus import BrokerUnavailable, Publisher, PublishRejected
from mesh.processes import port_open, wait_until
from tests.support.events import Recorder, event, event_config
from tests.support.processes import EmbeddedMongo
from tests.support.rabbit_cluster import RabbitCluster, RabbitNode

QUEUE = "cluster.fixture.q"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    started = RabbitCluster.plan().start()
    yield started
    started.remove()


def _connection(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def test_three_nodes_run_as_one_cluster_and_the_default_node_is_untouched(cluster: RabbitCluster) -> None:
    assert cluster.running_nodes() == sorted(node.node for node in cluster.nodes)
    assert 5672 not in {node.port for node in cluster.nodes} and port_open(5672)


def test_confirmed_message_survives_a_kill_of_the_quorum_queue_leader(cluster: RabbitCluster) -> None:
    first = cluster.nodes[0]
    with _connection(first.url) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(
            QUEUE, durable=True, arguments={"x-queue-type": "quorum", "x-quorum-initial-group-size": 3}
        )
        channel.basic_publish(
            "", QUEUE, b"kept", pika.BasicProperties(delivery_mode=2), mandatory=True
        )  # returns once a majority confirmed it
    members = first.ctl("list_queues", "name", "members", "--formatter", "json")
    assert all(node.node in members for node in cluster.nodes)

    leader = cluster.node(cluster.queue_leader(QUEUE))
    leader.kill()
    survivors = [node for node in cluster.nodes if node is not leader]
    assert wait_until(lambda: cluster.queue_leader(QUEUE) not in ("", leader.node), 30, 0.5)
    with _connection(survivors[0].url) as connection:
        method, _, body = connection.channel().basic_get(QUEUE, auto_ack=True)
    assert method is not None and body == b"kept"
    _restart(cluster, leader)


def _restart(cluster: RabbitCluster, node: RabbitNode) -> None:
    """A killed node comes back with its data and rejoins the cluster."""
    node.start()
    node.await_started()
    assert wait_until(lambda: node.node in cluster.running_nodes(), 60, 1)


def _publish_all(publisher: Publisher, numbers: range) -> None:
    """Publish each event until the broker confirms it (a node may die meanwhile)."""
    for n in numbers:
        deadline = time.monotonic() + 30
        while True:
            try:
                publisher.publish(event(n)).result(10)
                break
            except (BrokerUnavailable, PublishRejected, TimeoutError):
                assert time.monotonic() < deadline, f"event {n} not confirmed within 30 s"
                publisher.wait_ready(5)


def test_bus_given_every_node_delivers_each_event_once_across_a_leader_kill(
    cluster: RabbitCluster, mongo: EmbeddedMongo, isolation: dict[str, str]
) -> None:
    config = event_config(mongo.url, isolation, rabbitmq_url=cluster.urls)
    recorder = Recorder(config).start()
    publisher = Publisher(config).start()
    try:
        assert publisher.wait_ready(15)
        _publish_all(publisher, range(100))
        leader = cluster.node(cluster.queue_leader(recorder.consumer.queue))
        leader.kill()
        killed_at = time.monotonic()
        _publish_all(publisher, range(100, 200))
        assert wait_until(lambda: len(recorder.subjects()) == 200, 60, 0.2)
        resumed_s = time.monotonic() - killed_at
        print(f"delivery resumed {resumed_s:.1f} s after the leader's kill")
        assert set(recorder.effect_counts().values()) == {1}  # each once, redeliveries included
        assert len(recorder.effect_counts()) == 200
    finally:
        publisher.close()
        recorder.stop()
    _restart(cluster, leader)


def test_remove_stops_every_node_and_deletes_its_data() -> None:
    small = RabbitCluster.plan(size=1).start()
    node = small.nodes[0]
    assert node.running()
    small.remove()
    assert not node.running() and not port_open(node.port) and not small.base.exists()
