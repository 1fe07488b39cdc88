"""The queue between APScheduler's submissions and a batch handler (mesh.timers)."""

from __future__ import annotations

from mesh.timers import Firing, _FiringQueue


def test_a_redelivered_firing_still_queued_is_handed_over_once() -> None:
    firings = _FiringQueue()
    firings.put(Firing("a", "t1", {}))
    firings.put(Firing("a", "t1", {}))  # the redelivery trigger fired again meanwhile
    assert [f.token for f in firings.take(10, 0)] == ["t1"]


def test_a_redelivered_firing_being_handled_is_not_queued_again() -> None:
    firings = _FiringQueue()
    firings.put(Firing("a", "t1", {}))
    taken = firings.take(10, 0)
    firings.put(Firing("a", "t1", {}))
    assert firings.take(10, 0) == []
    firings.done(taken)
    firings.put(Firing("a", "t1", {}))  # handled and not completed: its next redelivery counts
    assert [f.token for f in firings.take(10, 0)] == ["t1"]


def test_take_hands_over_at_most_the_batch_size_oldest_first() -> None:
    firings = _FiringQueue()
    for i in range(5):
        firings.put(Firing(f"k{i}", f"t{i}", {}))
    assert [f.key for f in firings.take(3, 0)] == ["k0", "k1", "k2"]
    assert [f.key for f in firings.take(3, 0)] == ["k3", "k4"]


def test_queue_is_idle_only_once_every_taken_firing_is_done() -> None:
    firings = _FiringQueue()
    assert firings.wait_idle(0)
    firings.put(Firing("a", "t1", {}))
    assert not firings.wait_idle(0)
    taken = firings.take(10, 0)
    assert not firings.wait_idle(0)  # being handled
    firings.done(taken)
    assert firings.wait_idle(0)
