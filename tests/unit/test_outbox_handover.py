"""The relay publishes rows handed over in memory only while their lease holds."""

import time

from mesh.outbox import still_leased


def row(row_id: str, created_at: float, lease_left_s: float) -> dict[str, object]:
    return {"_id": row_id, "created_at": created_at, "claim_expires_at": time.time() + lease_left_s}


def test_rows_handed_over_are_published_oldest_first() -> None:
    rows = [row("b", 2.0, 30), row("a", 1.0, 30)]
    assert [r["_id"] for r in still_leased(rows)] == ["a", "b"]


def test_a_row_whose_lease_ran_out_is_left_to_the_sweep() -> None:
    rows = [row("late", 1.0, -0.1), row("fresh", 2.0, 30)]
    assert [r["_id"] for r in still_leased(rows)] == ["fresh"]
