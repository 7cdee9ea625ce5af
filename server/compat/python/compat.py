"""annal-server checked with the official KurrentDB Python client, used as its documentation shows.

Run by ../run.sh, which starts the server and sets ANNAL_SERVER to its HOST:PORT. Prints one
line per check and closes with "N passed, N failed"; exits non-zero if any check failed.
"""

import json
import os
import sys
import threading
import time
import uuid

from kurrentdbclient import KurrentDBClient, NewEvent, NewEvents, StreamState
from kurrentdbclient.events import CaughtUp, Checkpoint
from kurrentdbclient.exceptions import (
    AlreadyExistsError,
    FailedPreconditionError,
    MaximumAppendSizeExceededError,
    NotFoundError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)

import checks

ENDPOINT = os.environ["ANNAL_SERVER"]
client = KurrentDBClient(uri=f"kurrentdb://{ENDPOINT}?tls=false")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4()}"


def event(type_, **data):
    return NewEvent(type=type_, data=json.dumps(data).encode())


def expect_error(error_class, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except error_class as error:
        return error
    raise AssertionError(f"{call.__name__} did not raise {error_class.__name__}")


def take(subscription, n, keep=lambda e: True):
    """The next n items of a subscription that `keep` accepts (the client's own timeout ends a hang)."""
    out = []
    for item in subscription:
        if keep(item):
            out.append(item)
            if len(out) == n:
                return out
    raise AssertionError(f"subscription ended after {len(out)} of {n}")


def until(subscription, last):
    """Items of a subscription up to and including the first that `last` accepts."""
    out = []
    for item in subscription:
        out.append(item)
        if last(item):
            return out
    raise AssertionError(f"subscription ended after {out}")


def check_append_each_expected_state_and_the_conflict():
    stream = unique("append")
    # A list of events goes through BatchAppend, a single event through Append.
    first = client.append_to_stream(
        stream, current_version=StreamState.NO_STREAM, events=[event("A", n=1), event("B", n=2)]
    )
    assert first >= 1, first
    second = client.append_to_stream(stream, current_version=1, events=event("C"))
    assert second > first, (first, second)
    client.append_to_stream(stream, current_version=StreamState.EXISTS, events=[event("D")])
    client.append_to_stream(stream, current_version=StreamState.ANY, events=event("E"))
    assert client.get_current_version(stream) == 4
    expect_error(WrongCurrentVersionError, client.append_to_stream, stream,
                 current_version=1, events=event("X"))
    expect_error(WrongCurrentVersionError, client.append_to_stream, stream,
                 current_version=1, events=[event("X"), event("Y")])
    expect_error(WrongCurrentVersionError, client.append_to_stream, stream,
                 current_version=StreamState.NO_STREAM, events=event("X"))
    expect_error(WrongCurrentVersionError, client.append_to_stream, unique("missing"),
                 current_version=StreamState.EXISTS, events=event("X"))
    assert client.get_current_version(stream) == 4


def check_multi_append_to_streams_is_atomic_and_a_conflict_appends_nothing():
    orders, stock = unique("orders"), unique("stock")
    client.append_to_stream(stock, current_version=StreamState.ANY, events=event("Stocked"))
    position = client.multi_append_to_stream(
        [
            NewEvents(orders, [event("Placed", n=1), event("Paid")], StreamState.NO_STREAM),
            NewEvents(stock, [event("Reserved")], 0),
        ]
    )
    assert [e.type for e in client.get_stream(orders)] == ["Placed", "Paid"]
    reserved = client.get_stream(stock)[-1]
    assert (reserved.type, reserved.commit_position) == ("Reserved", position), reserved
    error = expect_error(
        WrongCurrentVersionError,
        client.multi_append_to_stream,
        [NewEvents(orders, [event("Shipped")], 1), NewEvents(stock, [event("Released")], 0)],
    )
    assert error.stream_name == stock, error.stream_name
    assert (error.expected_version, error.actual_version) == (0, 1)
    assert len(client.get_stream(orders)) == 2


def check_an_append_over_the_size_limit_is_refused():
    stream = unique("big")
    big = NewEvent(type="Big", data=b"x" * (600 << 10), content_type="application/octet-stream")
    expect_error(MaximumAppendSizeExceededError, client.append_to_stream, stream,
                 current_version=StreamState.ANY, events=[big, big])
    assert client.get_current_version(stream) == StreamState.NO_STREAM


def check_read_a_stream_forwards_and_backwards():
    stream = unique("read")
    id_ = uuid.uuid4()
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=[
        NewEvent(id=id_, type="Json", data=b'{"hello":"world"}', metadata=b'{"by":"python"}'),
        NewEvent(type="Bin", data=b"\x01\x02", content_type="application/octet-stream"),
        event("Third"),
    ])
    events = client.get_stream(stream)
    assert [(e.type, e.stream_position) for e in events] == [("Json", 0), ("Bin", 1), ("Third", 2)]
    assert events[0].id == id_ and events[0].stream_name == stream
    assert events[0].data == b'{"hello":"world"}' and events[0].metadata == b'{"by":"python"}'
    assert events[0].content_type == "application/json"
    assert events[1].content_type == "application/octet-stream" and events[1].data == b"\x01\x02"
    assert events[0].commit_position == events[0].prepare_position
    assert events[0].recorded_at is not None and abs(events[0].recorded_at.timestamp() - time.time()) < 600
    backwards = client.get_stream(stream, backwards=True, limit=2)
    assert [e.stream_position for e in backwards] == [2, 1]
    from_one = client.get_stream(stream, stream_position=1)
    assert [e.stream_position for e in from_one] == [1, 2]
    expect_error(NotFoundError, client.get_stream, unique("nothing"))


def check_read_all_forwards_and_backwards():
    stream = unique("all")
    client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("A1"), event("A2")])
    forwards = [e for e in client.read_all() if e.stream_name == stream]
    assert [e.type for e in forwards] == ["A1", "A2"]
    assert forwards[0].commit_position < forwards[1].commit_position
    backwards = list(client.read_all(backwards=True, limit=2))
    assert [e.type for e in backwards] == ["A2", "A1"], [e.type for e in backwards]
    from_second = list(client.read_all(commit_position=forwards[1].commit_position, limit=1))
    assert [e.type for e in from_second] == ["A2"]
    assert client.get_commit_position() == forwards[1].commit_position


def check_subscribe_to_a_stream_catch_up_then_live():
    stream = unique("sub")
    client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("Old1"), event("Old2")])
    with client.subscribe_to_stream(stream, include_caught_up=True, timeout=20) as subscription:
        history = take(subscription, 3)
        assert [e.type for e in history[:2]] == ["Old1", "Old2"]
        assert isinstance(history[2], CaughtUp), history[2]
        client.append_to_stream(stream, current_version=1, events=event("New"))
        live = take(subscription, 1)
        assert [(e.type, e.stream_position) for e in live] == [("New", 2)]
    # From a position, a subscription starts after it.
    with client.subscribe_to_stream(stream, stream_position=1, timeout=20) as subscription:
        assert [e.stream_position for e in take(subscription, 1)] == [2]


def check_subscribe_to_all_with_a_filter_and_checkpoints_then_live():
    prefix = unique("filtered")
    for _ in range(5):
        client.append_to_stream(unique("noise"), current_version=StreamState.ANY, events=event("Noise"))
    client.append_to_stream(f"{prefix}-1", current_version=StreamState.ANY, events=event("Wanted"))
    with client.subscribe_to_all(
        filter_include=[f"{prefix}-.*"],
        filter_by_stream_name=True,
        include_checkpoints=True,
        window_size=1,
        checkpoint_interval_multiplier=1,
        timeout=20,
    ) as subscription:
        events = take(subscription, 1, keep=lambda e: not isinstance(e, Checkpoint))
        assert [e.stream_name for e in events] == [f"{prefix}-1"]
        client.append_to_stream(unique("noise"), current_version=StreamState.ANY, events=event("Noise"))
        client.append_to_stream(f"{prefix}-2", current_version=StreamState.ANY, events=event("Wanted"))
        items = until(subscription, lambda e: not isinstance(e, Checkpoint))
        assert any(isinstance(e, Checkpoint) for e in items), "a checkpoint for the scanned noise"
        assert items[-1].stream_name == f"{prefix}-2", items


def check_subscribe_to_all_by_event_type_from_a_commit_position():
    stream = unique("typed")
    position = client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("Skip"), event("Keep")])
    client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("Drop"), event("Keep")])
    with client.subscribe_to_all(commit_position=position, filter_include=["Keep"], timeout=20) as subscription:
        events = take(subscription, 1)
        assert [(e.stream_name, e.stream_position) for e in events] == [(stream, 3)]


def check_delete_and_tombstone_and_their_errors():
    stream = unique("delete")
    client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("A"), event("B")])
    expect_error(WrongCurrentVersionError, client.delete_stream, stream, current_version=0)
    client.delete_stream(stream, current_version=1)
    expect_error(NotFoundError, client.get_stream, stream)
    expect_error(NotFoundError, client.delete_stream, unique("never"), current_version=StreamState.ANY)
    client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=event("C"))
    assert [e.stream_position for e in client.get_stream(stream)] == [2]

    gone = unique("tombstone")
    client.append_to_stream(gone, current_version=StreamState.ANY, events=event("A"))
    client.tombstone_stream(gone, current_version=StreamState.ANY)
    # A single event goes through Append, whose errors this client maps generically.
    error = expect_error(FailedPreconditionError, client.append_to_stream, gone,
                         current_version=StreamState.ANY, events=event("B"))
    assert "is deleted" in str(error), error
    expect_error(StreamIsDeletedError, client.append_to_stream, gone,
                 current_version=StreamState.ANY, events=[event("B"), event("C")])
    expect_error(StreamIsDeletedError, client.get_stream, gone)
    expect_error(StreamIsDeletedError, client.tombstone_stream, gone, current_version=StreamState.ANY)
    expect_error(StreamIsDeletedError, client.get_current_version, gone)


def check_stream_metadata_max_count_and_custom_keys():
    stream = unique("meta")
    metadata, version = client.get_stream_metadata(stream)
    assert metadata == {} and version == StreamState.NO_STREAM, (metadata, version)
    client.set_stream_metadata(stream, metadata={"$maxCount": 2, "owner": "ops"},
                               current_version=StreamState.NO_STREAM)
    client.append_to_stream(stream, current_version=StreamState.ANY,
                            events=[event("A"), event("B"), event("C")])
    assert [e.type for e in client.get_stream(stream)] == ["B", "C"]
    metadata, version = client.get_stream_metadata(stream)
    assert metadata == {"$maxCount": 2, "owner": "ops"} and version == 0, (metadata, version)
    expect_error(WrongCurrentVersionError, client.set_stream_metadata, stream,
                 metadata={}, current_version=StreamState.NO_STREAM)


def check_a_discover_connection_string_finds_the_node_through_gossip():
    discovered = KurrentDBClient(uri=f"kurrentdb+discover://{ENDPOINT}?tls=false")
    try:
        members = discovered.read_gossip()
        assert len(members) == 1 and members[0].state == "NODE_STATE_LEADER", members
        stream = unique("discover")
        discovered.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=event("Found"))
        assert [e.type for e in discovered.get_stream(stream)] == ["Found"]
    finally:
        discovered.close()


def check_persistent_subscription_to_a_stream_ack_nack_park_replay_and_delete():
    stream, group = unique("psub"), unique("group")
    client.create_subscription_to_stream(group, stream, consumer_strategy="RoundRobin", max_retry_count=3)
    expect_error(AlreadyExistsError, client.create_subscription_to_stream, group, stream)
    info = client.get_subscription_info(group, stream)
    assert (info.group_name, info.event_source) == (group, stream), info
    assert (info.consumer_strategy, info.max_retry_count) == ("RoundRobin", 3), info
    assert any(s.group_name == group and s.event_source == stream for s in client.list_subscriptions())

    client.append_to_stream(stream, current_version=StreamState.ANY, events=[event(f"E{i}") for i in range(4)])
    subscription = client.read_subscription_to_stream(group, stream, timeout=60)
    try:
        first = take(subscription, 4)
        assert [(e.type, e.retry_count) for e in first] == [(f"E{i}", 0) for i in range(4)], first
        subscription.ack(first[1])
        subscription.nack(first[0], action="retry")
        (retried,) = take(subscription, 1)
        assert (retried.type, retried.retry_count) == ("E0", 1), retried
        subscription.ack(retried)
        subscription.nack(first[2], action="park")
        subscription.nack(first[3], action="skip")
        # The client sends acks and nacks in batches: wait until the server has the park.
        for _ in range(200):
            if client.get_subscription_info(group, stream).parked_message_count == 1:
                break
            time.sleep(0.05)
        info = client.get_subscription_info(group, stream)
        assert info.parked_message_count == 1 and len(info.connections) == 1, info
        client.replay_parked_events(group, stream)
        (replayed,) = take(subscription, 1)
        assert (replayed.type, replayed.retry_count) == ("E2", 0), replayed
        subscription.ack(replayed)
        # The skipped event is not delivered again: the next delivery is a new event.
        client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("E4")])
        (nxt,) = take(subscription, 1)
        assert nxt.type == "E4", nxt
        subscription.ack(nxt)
    finally:
        subscription.stop()
    client.delete_subscription(group, stream)
    expect_error(NotFoundError, client.get_subscription_info, group, stream)


def check_persistent_subscription_two_competing_consumers_each_event_once():
    stream, group, n = unique("psub-pool"), unique("pool"), 20
    client.create_subscription_to_stream(group, stream, consumer_strategy="RoundRobin")
    subscriptions = [client.read_subscription_to_stream(group, stream, timeout=60) for _ in range(2)]
    for _ in range(200):
        if len(client.get_subscription_info(group, stream).connections) == 2:
            break
        time.sleep(0.05)
    got = [[], []]
    enough = threading.Event()
    lock = threading.Lock()

    def consume(i):
        for e in subscriptions[i]:
            subscriptions[i].ack(e)
            with lock:
                got[i].append(e.stream_position)
                if len(got[0]) + len(got[1]) >= n:
                    enough.set()
            if enough.is_set():
                return

    threads = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    client.append_to_stream(stream, current_version=StreamState.ANY, events=[event("Job", i=i) for i in range(n)])
    assert enough.wait(30), got
    for s in subscriptions:
        s.stop()
    assert got[0] and got[1], f"each got a share: {got}"
    assert sorted(got[0] + got[1]) == list(range(n)), got
    client.delete_subscription(group, stream)


def check_persistent_subscription_to_all_with_a_filter():
    prefix, group = unique("psub-all"), unique("all-group")
    client.create_subscription_to_all(group, from_end=True, filter_include=[f"{prefix}-.*"], filter_by_stream_name=True)
    assert client.get_subscription_info(group).event_source == "$all"
    subscription = client.read_subscription_to_all(group, timeout=60)
    try:
        client.append_to_stream(unique("elsewhere"), current_version=StreamState.ANY, events=[event("Other")])
        client.append_to_stream(f"{prefix}-1", current_version=StreamState.ANY, events=[event("Wanted")])
        (got,) = take(subscription, 1)
        assert (got.stream_name, got.type) == (f"{prefix}-1", "Wanted"), got
        subscription.ack(got)
    finally:
        subscription.stop()
    client.delete_subscription(group)


def main():
    try:
        return checks.run(globals())
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
