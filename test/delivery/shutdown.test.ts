import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { waitFor } from "../helpers/wait.js";

const sender: Principal = {
  kind: "user",
  id: "shutdown-test",
  label: "shutdown test",
  email: null,
  superAdmin: true,
  permissions: new Set(),
  serverIds: null,
  userId: null,
};

describe("a graceful shutdown", () => {
  let t: TestApp;
  let silent: net.Server;
  const sockets = new Set<net.Socket>();
  beforeAll(async () => {
    // A server that accepts connections and never answers: sends hang until their timeout.
    silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    t = await startTestApp("sqlite", { MAILROOM_POLL_MS: "20" });
  });
  afterAll(async () => {
    await t.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  });

  it("stops claiming and gives the messages it holds back to the queue, untouched", async () => {
    const port = (silent.address() as net.AddressInfo).port;
    const server = await t.mailroom.servers.create(
      {
        name: "Silent",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port, security: "none", timeoutSeconds: 30 },
      },
      systemActor,
    );
    const queued = await t.mailroom.messages.enqueueBatch(
      Array.from({ length: 5 }, (_, i) => ({ server: server.id, to: `r${i}@example.com`, subject: `s${i}` })),
      sender,
    );
    t.mailroom.worker.start();
    await waitFor("the messages to be claimed", async () => {
      const rows = await Promise.all(queued.map((q) => t.mailroom.messages.getRow(q.id)));
      return rows.every((r) => r.status === "sending");
    });
    await t.mailroom.worker.stop(100);
    const rows = await Promise.all(queued.map((q) => t.mailroom.messages.getRow(q.id)));
    for (const row of rows) {
      expect(row).toMatchObject({ status: "queued", lease_owner: null, attempts: 0 });
      expect(row.next_attempt_at).toBeLessThanOrEqual(Date.now());
    }
  });
});
