"""Membership rules of a chat room (pure model, no store)."""

import pytest

from chat_svc.model import Room, RoomKind
from mesh.errors import FailedPrecondition


def direct_room() -> Room:
    return Room(id="r1", kind=RoomKind.DIRECT, display_name="", owner_id="alice", member_ids=["alice", "bob"])


def test_owner_cannot_add_a_third_member_to_a_direct_room() -> None:
    room = direct_room()
    with pytest.raises(FailedPrecondition):
        room.admit("carol")
    assert room.member_ids == ["alice", "bob"]


def test_adding_an_existing_member_to_a_direct_room_changes_nothing() -> None:
    room = direct_room()
    assert room.admit("bob") is False
    assert room.member_ids == ["alice", "bob"]


def test_owner_adds_a_member_to_a_group_room() -> None:
    room = Room(id="r2", kind=RoomKind.GROUP, display_name="g", owner_id="alice", member_ids=["alice"])
    assert room.admit("carol") is True
    assert room.member_ids == ["alice", "carol"]
