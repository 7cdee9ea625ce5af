// annal-server over TLS with basic authentication, checked with the official Node client.
// Run by ../run.sh, which starts a second server with a throwaway certificate and a users file
// and sets ANNAL_TLS_SERVER (HOST:PORT), ANNAL_TLS_CA (the CA's PEM file), ANNAL_TLS_USER and
// ANNAL_TLS_PASSWORD.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  KurrentDBClient,
  jsonEvent,
  NO_STREAM,
  ANY,
  AccessDeniedError,
} from "@kurrent/kurrentdb-client";

const endpoint = process.env.ANNAL_TLS_SERVER;
const ca = process.env.ANNAL_TLS_CA;
const user = process.env.ANNAL_TLS_USER;
const password = process.env.ANNAL_TLS_PASSWORD;
assert.ok(endpoint && ca && user && password, "ANNAL_TLS_* must be set");

const connect = (pass) =>
  KurrentDBClient.connectionString(
    `kurrentdb://${user}:${pass}@${endpoint}?tls=true&tlsCAFile=${ca}`,
  );

test("TLS with credentials appends and reads back", async () => {
  const client = connect(password);
  try {
    const stream = `tls-${randomUUID()}`;
    await client.appendToStream(stream, jsonEvent({ type: "Secure", data: {} }), {
      streamState: NO_STREAM,
    });
    const types = [];
    for await (const resolved of client.readStream(stream)) types.push(resolved.event.type);
    assert.deepEqual(types, ["Secure"]);
  } finally {
    await client.dispose();
  }
});

test("a wrong password is refused with AccessDeniedError", async () => {
  const client = connect(`${password}-wrong`);
  try {
    await assert.rejects(
      client.appendToStream(`tls-${randomUUID()}`, jsonEvent({ type: "Refused", data: {} }), {
        streamState: ANY,
      }),
      AccessDeniedError,
    );
    await assert.rejects(async () => {
      for await (const _ of client.readStream(`tls-${randomUUID()}`)) break;
    }, AccessDeniedError);
  } finally {
    await client.dispose();
  }
});
