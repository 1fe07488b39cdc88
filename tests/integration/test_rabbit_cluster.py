"""The three-node RabbitMQ cluster fixture, beside the machine's default node: it
forms one cluster, replicates a quorum queue over the three nodes, keeps a confirmed
message through a kill -9 of the queue's leader, and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from mesh.processes import port_open, wait_until
from tests.support.rabbit_cluster import RabbitCluster

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


def test_remove_stops_every_node_and_deletes_its_data() -> None:
    small = RabbitCluster.plan(size=1).start()
    node = small.nodes[0]
    assert node.running()
    small.remove()
    assert not node.running() and not port_open(node.port) and not small.base.exists()
