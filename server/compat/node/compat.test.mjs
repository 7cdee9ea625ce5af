// annal-server checked with the official KurrentDB Node client, used as its documentation shows.
// Run by ../run.sh, which starts the server and sets ANNAL_SERVER to its HOST:PORT.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  KurrentDBClient,
  jsonEvent,
  binaryEvent,
  ANY,
  NO_STREAM,
  STREAM_EXISTS,
  START,
  END,
  FORWARDS,
  BACKWARDS,
  WrongExpectedVersionError,
  StreamNotFoundError,
  StreamDeletedError,
  streamNameFilter,
  eventTypeFilter,
  ROUND_ROBIN,
  persistentSubscriptionToStreamSettingsFromDefaults,
  persistentSubscriptionToAllSettingsFromDefaults,
  PersistentSubscriptionExistsError,
  PersistentSubscriptionDoesNotExistError,
} from "@kurrent/kurrentdb-client";

const endpoint = process.env.ANNAL_SERVER;
assert.ok(endpoint, "ANNAL_SERVER (host:port) must be set");
const client = KurrentDBClient.connectionString(`kurrentdb://${endpoint}?tls=false`);
after(() => client.dispose());

const unique = (prefix) => `${prefix}-${randomUUID()}`;
const event = (type, data) => jsonEvent({ type, data });

async function collect(iterable) {
  const out = [];
  for await (const resolved of iterable) out.push(resolved.event);
  return out;
}

/**
 * Takes the next `n` deliveries (resolved events with their retry count) from a persistent
 * subscription, failing rather than hanging.
 */
function deliveries(subscription, n, seconds = 20) {
  return new Promise((resolve, reject) => {
    const out = [];
    const done = (finish) => {
      clearTimeout(timer);
      subscription.off("data", onData);
      subscription.off("error", onError);
      subscription.pause();
      finish();
    };
    const onData = (resolved) => {
      out.push(resolved);
      if (out.length === n) done(() => resolve(out));
    };
    const onError = (error) => done(() => reject(error));
    const timer = setTimeout(
      () => done(() => reject(new Error(`only ${out.length} of ${n} deliveries arrived`))),
      seconds * 1000,
    );
    subscription.on("data", onData);
    subscription.on("error", onError);
    subscription.resume();
  });
}

/** Takes the next `n` events from a subscription, failing rather than hanging. */
async function take(subscription, n, seconds = 20) {
  return (await deliveries(subscription, n, seconds)).map((resolved) => resolved.event);
}

/** Acks everything two competing subscriptions get until `n` events arrived; what each got. */
function shareOut(first, second, n, seconds = 20) {
  return new Promise((resolve, reject) => {
    const got = [[], []];
    const subs = [first, second];
    const listeners = subs.map((sub, i) => async (resolved) => {
      got[i].push(resolved.event);
      await sub.ack(resolved);
      if (got[0].length + got[1].length === n) finish(() => resolve(got));
    });
    const onError = (error) => finish(() => reject(error));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`only ${got[0].length + got[1].length} of ${n} arrived`))),
      seconds * 1000,
    );
    const finish = (then) => {
      clearTimeout(timer);
      subs.forEach((sub, i) => {
        sub.off("data", listeners[i]);
        sub.off("error", onError);
        sub.pause();
      });
      then();
    };
    subs.forEach((sub, i) => {
      sub.on("data", listeners[i]);
      sub.on("error", onError);
      sub.resume();
    });
  });
}

test("append with each expected state, and the conflict", async () => {
  const stream = unique("append");
  let result = await client.appendToStream(stream, [event("A", { n: 1 }), event("B", { n: 2 })], {
    streamState: NO_STREAM,
  });
  assert.equal(result.success, true);
  assert.equal(result.nextExpectedRevision, 1n);
  assert.ok(result.position.commit >= 1n);
  assert.equal(result.position.commit, result.position.prepare);

  result = await client.appendToStream(stream, event("C", {}), { streamState: 1n });
  assert.equal(result.nextExpectedRevision, 2n);
  result = await client.appendToStream(stream, event("D", {}), { streamState: STREAM_EXISTS });
  assert.equal(result.nextExpectedRevision, 3n);
  result = await client.appendToStream(stream, event("E", {}), { streamState: ANY });
  assert.equal(result.nextExpectedRevision, 4n);

  await assert.rejects(
    client.appendToStream(stream, event("X", {}), { streamState: 1n }),
    (error) => {
      assert.ok(error instanceof WrongExpectedVersionError, `got ${error}`);
      assert.equal(error.streamName, stream);
      assert.equal(error.actualState, 4n);
      assert.equal(error.expectedState, 1n);
      return true;
    },
  );
  await assert.rejects(
    client.appendToStream(stream, event("X", {}), { streamState: NO_STREAM }),
    WrongExpectedVersionError,
  );
  await assert.rejects(
    client.appendToStream(unique("missing"), event("X", {}), { streamState: STREAM_EXISTS }),
    WrongExpectedVersionError,
  );
});

test("multiStreamAppend: several streams atomically, and a conflict appends nothing", async () => {
  const [orders, stock] = [unique("orders"), unique("stock")];
  await client.appendToStream(stock, event("Stocked", { n: 5 }));
  const id = randomUUID();
  const placed = jsonEvent({ id, type: "Placed", data: { n: 1 }, metadata: { by: "node" } });
  const result = await client.multiStreamAppend([
    { streamName: orders, expectedState: NO_STREAM, events: [placed, event("Paid", {})] },
    { streamName: stock, expectedState: 0n, events: [event("Reserved", { n: 1 })] },
  ]);
  assert.deepEqual(
    result.responses.map((r) => [r.streamName, r.revision]),
    [[orders, 1n], [stock, 1n]],
  );
  const read = await collect(client.readStream(orders));
  assert.deepEqual(read.map((e) => e.type), ["Placed", "Paid"]);
  assert.equal(read[0].id, id);
  assert.deepEqual(read[0].data, { n: 1 });
  assert.deepEqual(read[0].metadata, { by: "node" });
  const [reserved] = await collect(client.readStream(stock, { fromRevision: 1n }));
  assert.equal(result.position, reserved.position.commit);

  await assert.rejects(
    client.multiStreamAppend([
      { streamName: orders, expectedState: 1n, events: [event("Shipped", {})] },
      { streamName: stock, expectedState: 0n, events: [event("Released", {})] },
    ]),
    (error) => {
      assert.ok(error instanceof WrongExpectedVersionError, `got ${error}`);
      assert.equal(error.streamName, stock);
      assert.equal(error.expectedState, 0n);
      assert.equal(error.actualState, 1n);
      return true;
    },
  );
  assert.equal((await collect(client.readStream(orders))).length, 2);
});

test("read a stream forwards and backwards, JSON and binary events, not found", async () => {
  const stream = unique("read");
  const id = randomUUID();
  await client.appendToStream(stream, [
    jsonEvent({ id, type: "Json", data: { hello: "world" }, metadata: { by: "node" } }),
    binaryEvent({ type: "Bin", data: Buffer.from([1, 2, 3]) }),
    event("Third", { n: 3 }),
  ]);

  const forwards = await collect(client.readStream(stream, { fromRevision: START, direction: FORWARDS, maxCount: 10 }));
  assert.deepEqual(forwards.map((e) => [e.type, e.revision]), [["Json", 0n], ["Bin", 1n], ["Third", 2n]]);
  assert.equal(forwards[0].id, id);
  assert.equal(forwards[0].streamId, stream);
  assert.equal(forwards[0].isJson, true);
  assert.deepEqual(forwards[0].data, { hello: "world" });
  assert.deepEqual(forwards[0].metadata, { by: "node" });
  assert.equal(forwards[1].isJson, false);
  assert.deepEqual(Buffer.from(forwards[1].data), Buffer.from([1, 2, 3]));
  const age = Date.now() - new Date(forwards[0].created).getTime();
  assert.ok(age >= -5000 && age < 600000, `created ${forwards[0].created} is not a recent time`);

  const backwards = await collect(client.readStream(stream, { fromRevision: END, direction: BACKWARDS, maxCount: 2 }));
  assert.deepEqual(backwards.map((e) => e.revision), [2n, 1n]);
  const fromOne = await collect(client.readStream(stream, { fromRevision: 1n, maxCount: 10 }));
  assert.deepEqual(fromOne.map((e) => e.revision), [1n, 2n]);

  await assert.rejects(collect(client.readStream(unique("nothing"))), StreamNotFoundError);
});

test("read $all forwards and backwards", async () => {
  const stream = unique("all");
  await client.appendToStream(stream, [event("A1", {}), event("A2", {})]);
  const forwards = (await collect(client.readAll({ fromPosition: START, direction: FORWARDS, maxCount: 100000 })))
    .filter((e) => e.streamId === stream);
  assert.deepEqual(forwards.map((e) => e.type), ["A1", "A2"]);
  assert.ok(forwards[0].position.commit < forwards[1].position.commit);

  const backwards = await collect(client.readAll({ fromPosition: END, direction: BACKWARDS, maxCount: 2 }));
  assert.deepEqual(backwards.map((e) => e.type), ["A2", "A1"]);
  assert.ok(backwards[0].position.commit > backwards[1].position.commit);

  // Forwards from a position includes it.
  const from = await collect(client.readAll({ fromPosition: forwards[1].position, maxCount: 1 }));
  assert.deepEqual(from.map((e) => e.type), ["A2"]);
});

test("subscribe to a stream: catch-up then live", async () => {
  const stream = unique("sub");
  await client.appendToStream(stream, [event("Old1", {}), event("Old2", {})]);
  const subscription = client.subscribeToStream(stream, { fromRevision: START });
  let caughtUp = false;
  subscription.on("caughtUp", () => { caughtUp = true; });
  const history = await take(subscription, 2);
  assert.deepEqual(history.map((e) => e.type), ["Old1", "Old2"]);
  await client.appendToStream(stream, event("New", {}));
  const live = await take(subscription, 1);
  assert.deepEqual(live.map((e) => [e.type, e.revision]), [["New", 2n]]);
  await subscription.unsubscribe();
  assert.equal(caughtUp, true, "caughtUp was reported");
});

test("subscribe to $all with a stream-name filter and checkpoints, then live", async () => {
  const prefix = unique("filtered");
  for (let i = 0; i < 5; i++) await client.appendToStream(unique("noise"), event("Noise", {}));
  await client.appendToStream(`${prefix}-1`, event("Wanted", { i: 1 }));
  const checkpoints = [];
  const subscription = client.subscribeToAll({
    fromPosition: START,
    filter: streamNameFilter({
      prefixes: [prefix],
      checkpointInterval: 1,
      checkpointReached: (_sub, position) => { checkpoints.push(position.commit); },
    }),
  });
  const history = await take(subscription, 1);
  assert.deepEqual(history.map((e) => e.streamId), [`${prefix}-1`]);
  await client.appendToStream(unique("noise"), event("Noise", {}));
  await client.appendToStream(`${prefix}-2`, event("Wanted", { i: 2 }));
  const live = await take(subscription, 1);
  assert.deepEqual(live.map((e) => e.streamId), [`${prefix}-2`]);
  await subscription.unsubscribe();
  assert.ok(checkpoints.length > 0, "checkpoints were reported");
});

test("subscribe to $all with an event-type regex filter from the end", async () => {
  const type = `Type${randomUUID().replaceAll("-", "")}`;
  const subscription = client.subscribeToAll({ fromPosition: END, filter: eventTypeFilter({ regex: `^${type}$` }) });
  await new Promise((resolve) => subscription.once("confirmation", resolve));
  await client.appendToStream(unique("typed"), [event("Other", {}), event(type, { ok: true })]);
  const live = await take(subscription, 1);
  assert.deepEqual(live.map((e) => [e.type, e.data]), [[type, { ok: true }]]);
  await subscription.unsubscribe();
});

test("delete and tombstone, and their errors", async () => {
  const stream = unique("delete");
  await client.appendToStream(stream, [event("A", {}), event("B", {})]);
  await assert.rejects(client.deleteStream(stream, { expectedRevision: 0n }), (error) => {
    assert.ok(error instanceof WrongExpectedVersionError, `got ${error}`);
    assert.equal(error.streamName, stream);
    assert.equal(error.expectedState, 0n);
    assert.equal(error.actualState, 1n);
    return true;
  });
  const deleted = await client.deleteStream(stream, { expectedRevision: 1n });
  assert.ok(deleted.position.commit > 0n);
  await assert.rejects(collect(client.readStream(stream)), StreamNotFoundError);
  // An append brings a soft-deleted stream back, its revisions continuing.
  const back = await client.appendToStream(stream, event("C", {}), { streamState: NO_STREAM });
  assert.equal(back.nextExpectedRevision, 2n);

  const gone = unique("tombstone");
  await client.appendToStream(gone, event("A", {}));
  await client.tombstoneStream(gone);
  await assert.rejects(client.appendToStream(gone, event("B", {})), (error) => {
    assert.ok(error instanceof StreamDeletedError, `got ${error}`);
    assert.equal(error.streamName, gone);
    return true;
  });
  await assert.rejects(collect(client.readStream(gone)), StreamDeletedError);
  await assert.rejects(client.tombstoneStream(gone), StreamDeletedError);
  await assert.rejects(client.deleteStream(unique("never")), WrongExpectedVersionError);
});

test("stream metadata: max count applies, custom keys round-trip", async () => {
  const stream = unique("meta");
  const none = await client.getStreamMetadata(stream);
  assert.equal(none.metadata, undefined);
  await client.setStreamMetadata(stream, { maxCount: 2, owner: "ops", limits: { n: 1 } });
  await client.appendToStream(stream, [event("A", {}), event("B", {}), event("C", {})]);
  const events = await collect(client.readStream(stream));
  assert.deepEqual(events.map((e) => e.type), ["B", "C"]);
  const result = await client.getStreamMetadata(stream);
  assert.equal(result.streamName, stream);
  // This client reports the metadata event's commit position as `metastreamRevision`.
  assert.equal(typeof result.metastreamRevision, "bigint");
  assert.deepEqual(result.metadata, { maxCount: 2, owner: "ops", limits: { n: 1 } });
  // This client version hands the options to appendToStream, which reads `streamState` (its
  // typings say `expectedRevision`, which it ignores).
  await assert.rejects(
    client.setStreamMetadata(stream, { maxCount: 5 }, { streamState: NO_STREAM }),
    WrongExpectedVersionError,
  );
});

test("a +discover connection string finds the node through gossip", async () => {
  const discovered = KurrentDBClient.connectionString(`kurrentdb+discover://${endpoint}?tls=false`);
  try {
    const stream = unique("discover");
    const result = await discovered.appendToStream(stream, event("Found", {}), { streamState: NO_STREAM });
    assert.equal(result.nextExpectedRevision, 0n);
    const events = await collect(discovered.readStream(stream));
    assert.deepEqual(events.map((e) => e.type), ["Found"]);
  } finally {
    await discovered.dispose();
  }
});

test("persistent subscription to a stream: create, info, list, ack, nack retry/park/skip, replay parked, delete", async () => {
  const stream = unique("psub");
  const group = unique("group");
  const settings = persistentSubscriptionToStreamSettingsFromDefaults({
    startFrom: START,
    consumerStrategyName: ROUND_ROBIN,
    maxRetryCount: 3,
  });
  await client.createPersistentSubscriptionToStream(stream, group, settings);
  await assert.rejects(
    client.createPersistentSubscriptionToStream(stream, group, settings),
    PersistentSubscriptionExistsError,
  );
  let info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
  assert.equal(info.groupName, group);
  assert.equal(info.eventSource, stream);
  assert.equal(info.settings.consumerStrategyName, ROUND_ROBIN);
  assert.equal(info.settings.maxRetryCount, 3);
  assert.equal(info.settings.startFrom, START);
  const listed = await client.listAllPersistentSubscriptions();
  assert.ok(listed.some((s) => s.groupName === group && s.eventSource === stream), "listed");

  await client.appendToStream(stream, [0, 1, 2, 3].map((i) => event(`E${i}`, { i })));
  const subscription = client.subscribeToPersistentSubscriptionToStream(stream, group);
  const first = await deliveries(subscription, 4);
  assert.deepEqual(first.map((r) => [r.event.type, r.retryCount]), [["E0", 0], ["E1", 0], ["E2", 0], ["E3", 0]]);
  await subscription.ack(first[1]);
  await subscription.nack("retry", "try again", first[0]);
  const [retried] = await deliveries(subscription, 1);
  assert.deepEqual([retried.event.type, retried.retryCount], ["E0", 1]);
  await subscription.ack(retried);
  await subscription.nack("park", "cannot handle", first[2]);
  await subscription.nack("skip", "not interesting", first[3]);

  // Acks and nacks are one-way messages: wait until the server has applied the park.
  for (let tries = 0; ; tries++) {
    info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    if (info.stats.parkedMessageCount === 1n || tries >= 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(info.stats.parkedMessageCount, 1n);
  assert.equal(info.connections.length, 1);
  await client.replayParkedMessagesToStream(stream, group);
  const [replayed] = await deliveries(subscription, 1);
  assert.deepEqual([replayed.event.type, replayed.retryCount], ["E2", 0]);
  await subscription.ack(replayed);
  // The skipped event is not delivered again: the next delivery is a new event.
  await client.appendToStream(stream, event("E4", {}));
  const [next] = await deliveries(subscription, 1);
  assert.equal(next.event.type, "E4");
  await subscription.ack(next);
  await subscription.unsubscribe();

  await client.deletePersistentSubscriptionToStream(stream, group);
  await assert.rejects(
    client.getPersistentSubscriptionToStreamInfo(stream, group),
    PersistentSubscriptionDoesNotExistError,
  );
});

test("persistent subscription: two competing consumers share the events, each exactly once", async () => {
  const stream = unique("psub-pool");
  const group = unique("pool");
  await client.createPersistentSubscriptionToStream(
    stream,
    group,
    persistentSubscriptionToStreamSettingsFromDefaults({ consumerStrategyName: ROUND_ROBIN }),
  );
  const first = client.subscribeToPersistentSubscriptionToStream(stream, group);
  const second = client.subscribeToPersistentSubscriptionToStream(stream, group);
  // Both are connected once the server lists both.
  for (let tries = 0; ; tries++) {
    const info = await client.getPersistentSubscriptionToStreamInfo(stream, group);
    if (info.connections.length === 2) break;
    assert.ok(tries < 200, "both consumers connect");
    await new Promise((r) => setTimeout(r, 50));
  }
  const n = 20;
  await client.appendToStream(stream, Array.from({ length: n }, (_, i) => event("Job", { i })));
  const [a, b] = await shareOut(first, second, n);
  assert.ok(a.length > 0 && b.length > 0, `each got a share: ${a.length} / ${b.length}`);
  const revisions = [...a, ...b].map((e) => e.revision).sort((x, y) => (x < y ? -1 : 1));
  assert.deepEqual(revisions, Array.from({ length: n }, (_, i) => BigInt(i)));
  await first.unsubscribe();
  await second.unsubscribe();
  await client.deletePersistentSubscriptionToStream(stream, group);
});

test("persistent subscription to $all with a stream-name filter", async () => {
  const prefix = unique("psub-all");
  const group = unique("all-group");
  await client.createPersistentSubscriptionToAll(
    group,
    persistentSubscriptionToAllSettingsFromDefaults({ startFrom: END }),
    { filter: streamNameFilter({ prefixes: [prefix] }) },
  );
  const info = await client.getPersistentSubscriptionToAllInfo(group);
  assert.equal(info.eventSource, "$all");
  const subscription = client.subscribeToPersistentSubscriptionToAll(group);
  await client.appendToStream(unique("elsewhere"), event("Other", {}));
  await client.appendToStream(`${prefix}-1`, event("Wanted", {}));
  const [got] = await deliveries(subscription, 1);
  assert.deepEqual([got.event.streamId, got.event.type], [`${prefix}-1`, "Wanted"]);
  await subscription.ack(got);
  await subscription.unsubscribe();
  await client.deletePersistentSubscriptionToAll(group);
});
