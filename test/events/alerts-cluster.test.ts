/**
 * Two Mailroom instances on one PostgreSQL database evaluate and dispatch alerts at the same
 * moments: each incident is opened once and resolved once, and each alert reaches the receiver
 * once (the unique open-incident key, the conditional resolve, the notification lease).
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, createMailroom, type Mailroom } from "../../src/app.js";
import { systemActor } from "../../src/core/audit.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";
import { type Receiver, startReceiver } from "./alert-receiver.js";

/** Defines a test only where it applies: a dialect-specific case is not a skip. */
const itWhen = (applies: boolean): typeof it => (applies ? it : ((() => {}) as unknown as typeof it));
const postgres = (await availableDialects()).includes("postgres");

describe("alerts from two instances on one PostgreSQL database", () => {
  let receiver: Receiver;
  let a: Mailroom;
  let b: Mailroom;
  let drop: () => Promise<void> = async () => {};

  beforeAll(async () => {
    if (!postgres) return;
    receiver = await startReceiver();
    const fresh = await freshConfig("postgres", { MAILROOM_ALLOWED_ENDPOINTS: receiver.origin });
    drop = fresh.drop;
    a = createMailroom(fresh.config, pino({ level: "silent" }));
    b = createMailroom(fresh.config, pino({ level: "silent" }));
    await Promise.all([bootstrap(a), bootstrap(b)]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await drop();
    await receiver?.close();
  });

  itWhen(postgres)(
    "each incident is announced once when it opens and once when it ends, however they race",
    async () => {
      await a.alerts.channels.create({ name: "Ops", type: "webhook", url: receiver.url() }, systemActor);
      await b.alerts.channels.create({ name: "Chat", type: "slack", url: receiver.url("/slack/x") }, systemActor);
      const server = await a.servers.create(
        {
          name: "Relay",
          driver: "smtp",
          fromAddress: "app@example.com",
          settings: { host: "127.0.0.1", port: 2, security: "none" },
        },
        systemActor,
      );
      const both = async () => {
        await Promise.all([a.alerts.tick(), b.alerts.tick(), a.alerts.tick(), b.alerts.tick()]);
        await Promise.all([a.alerts.idle(), b.alerts.idle()]);
      };
      const ROUNDS = 5;
      for (let round = 0; round < ROUNDS; round++) {
        // Both instances see the server fail (each nudges its own alerts), and evaluate and send at once.
        await Promise.all([
          a.servers.setFault(server.id, "failing", "refused"),
          b.servers.setFault(server.id, "failing", "refused"),
        ]);
        await both();
        await both();
        await a.servers.setFault(server.id, null, null);
        await both();
        await both();
      }
      const events = receiver.received.map((r) => `${r.path} ${String(r.json.type ?? (r.json.text as string).split(":")[0])}`);
      const count = (what: string) => events.filter((e) => e === what).length;
      expect(count("/hook alert.opened")).toBe(ROUNDS);
      expect(count("/hook alert.resolved")).toBe(ROUNDS);
      expect(count("/slack/x [Mailroom] ALERT")).toBe(ROUNDS);
      expect(count("/slack/x [Mailroom] RESOLVED")).toBe(ROUNDS);
      expect(events).toHaveLength(4 * ROUNDS);
      // Every webhook id is another alert: no alert was sent twice.
      const ids = receiver.received.filter((r) => r.path === "/hook").map((r) => r.headers["webhook-id"]);
      expect(new Set(ids).size).toBe(2 * ROUNDS);

      const incidents = await a.ctx.db.selectFrom("alert_incidents").selectAll().execute();
      expect(incidents).toHaveLength(ROUNDS);
      expect(incidents.every((i) => i.resolved_at !== null && i.open_key === null)).toBe(true);
      const notes = await a.ctx.db.selectFrom("alert_notifications").select(["status", "attempts"]).execute();
      expect(notes).toHaveLength(4 * ROUNDS);
      expect(notes.every((n) => n.status === "delivered" && Number(n.attempts) === 1)).toBe(true);
    },
    60_000,
  );
});
