// The Node client's view of annal-server (issue #15 §5): 64 concurrent appenders of single
// events with exact expected revisions, then `$all` read forward. Not part of the compat check.
// Usage: ANNAL_SERVER=HOST:PORT node bench.mjs [seconds]
import { KurrentDBClient, jsonEvent, NO_STREAM, START, FORWARDS } from "@kurrent/kurrentdb-client";

const endpoint = process.env.ANNAL_SERVER;
const seconds = Number(process.argv[2] ?? 5);
const client = KurrentDBClient.connectionString(`kurrentdb://${endpoint}?tls=false`);
const payload = { account: "acc-0042", amount: 125, currency: "EUR", note: "bench" };

const latencies = [];
const deadline = Date.now() + seconds * 1000;
const started = performance.now();
await Promise.all(
  Array.from({ length: 64 }, async (_, w) => {
    let state = NO_STREAM;
    const stream = `node-${w}-${Date.now()}`;
    while (Date.now() < deadline) {
      const t = performance.now();
      const r = await client.appendToStream(stream, jsonEvent({ type: "Deposited", data: payload }), {
        streamState: state,
      });
      latencies.push(performance.now() - t);
      state = r.nextExpectedRevision;
    }
  }),
);
const appendSecs = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const p99 = latencies[Math.floor(latencies.length * 0.99)];
console.log(`node appends: ${(latencies.length / appendSecs).toFixed(0)}/s p99 ${p99.toFixed(2)} ms`);

const readStart = performance.now();
let n = 0;
for await (const _ of client.readAll({ fromPosition: START, direction: FORWARDS, maxCount: 10_000_000 })) n++;
const readSecs = (performance.now() - readStart) / 1000;
console.log(`node $all read: ${n} events, ${(n / readSecs).toFixed(0)}/s`);
await client.dispose();
