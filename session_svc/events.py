"""Domain events of a session change (switchboard.events.v1 session_events)."""

from __future__ import annotations

from google.protobuf.message import Message
from switchboard.events.v1 import session_events_pb2 as ev

from mesh.events import Event, event_type_of, new_event
from mesh.protos import optional_timestamp
from session_svc.model import Change, Session

SOURCE = "session_svc"


def event_for(session: Session, now: float) -> Event:
    """The event announcing `session.last_change`."""
    common = {
        "session_id": session.id,
        "customer_id": session.customer_id,
        "advisor_id": session.advisor_id,
        "room_id": session.room_id,
        "version": session.version,
    }
    data: Message
    change = session.last_change
    if change is Change.STARTED:
        data = ev.SessionStarted(
            **common,
            prepaid_seconds=session.paid_seconds_total,
            paid_until=optional_timestamp(session.paid_until),
            start_time=optional_timestamp(session.create_time),
        )
    elif change is Change.WARNED:
        data = ev.SessionPauseWarning(
            **common,
            paid_until=optional_timestamp(session.paid_until),
            remaining_seconds=session.remaining_seconds(now),
            warn_time=optional_timestamp(now),
        )
    elif change is Change.PAUSED:
        data = ev.SessionPaused(
            **common,
            pause_time=optional_timestamp(session.paid_until),
            expire_at=optional_timestamp(session.expire_at),
        )
    elif change in (Change.RESUMED, Change.RECHARGED):
        cls = ev.SessionResumed if change is Change.RESUMED else ev.SessionRecharged
        time_field = "resume_time" if change is Change.RESUMED else "recharge_time"
        data = cls(
            **common,
            added_seconds=session.last_added_seconds,
            paid_until=optional_timestamp(session.paid_until),
            paid_seconds_total=session.paid_seconds_total,
            **{time_field: optional_timestamp(now)},
        )
    else:
        expired = change is Change.EXPIRED
        data = ev.SessionEnded(
            **common,
            reason=ev.SESSION_END_REASON_EXPIRED if expired else ev.SESSION_END_REASON_ENDED,
            ended_by=session.ended_by,
            paid_seconds_total=session.paid_seconds_total,
            end_time=optional_timestamp(session.end_time or now),
        )
    return new_event(event_type_of(data), SOURCE, f"sessions/{session.id}", data)
