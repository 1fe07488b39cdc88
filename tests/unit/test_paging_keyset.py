"""Keyset paging filters shared by the List RPCs (mesh.paging)."""

from pymongo import ASCENDING, DESCENDING

from mesh.paging import keyset_query, keyset_sort


def test_first_page_is_the_filters_alone() -> None:
    assert keyset_query({"owner_id": "alice"}, "create_time", None) == {"owner_id": "alice"}


def test_next_page_newest_first_takes_older_rows_and_breaks_ties_by_id() -> None:
    assert keyset_query({"owner_id": "alice"}, "create_time", (5.0, "j9")) == {
        "$and": [
            {"owner_id": "alice"},
            {"$or": [{"create_time": {"$lt": 5.0}}, {"create_time": 5.0, "_id": {"$lt": "j9"}}]},
        ]
    }


def test_next_page_oldest_first_takes_newer_rows_without_filters() -> None:
    assert keyset_query({}, "created_at", (5.0, "e1"), descending=False) == {
        "$or": [{"created_at": {"$gt": 5.0}}, {"created_at": 5.0, "_id": {"$gt": "e1"}}]
    }


def test_sort_matches_the_direction() -> None:
    assert keyset_sort("create_time") == [("create_time", DESCENDING), ("_id", DESCENDING)]
    assert keyset_sort("created_at", descending=False) == [("created_at", ASCENDING), ("_id", ASCENDING)]
