import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { simpleParser } from "mailparser";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { captureDriver } from "../../src/drivers/capture/index.js";
import { captureFolder, listCaptured, readCaptured, removeCaptured } from "../../src/drivers/capture/store.js";
import { createCaptureTransport } from "../../src/drivers/capture/transport.js";
import { DeliveryError, type TransportContext } from "../../src/kernel/transport.js";
import { PDF, PNG, sampleMessage } from "./sample.js";

const SERVER_ID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

let dataDir: string;

function context(settings: Record<string, number> = {}, dir = dataDir): TransportContext {
  return {
    serverId: SERVER_ID,
    serverName: "Capture",
    fromAddress: "sender@example.com",
    settings: { retention: 1000, ...settings },
    secrets: {},
    dataDir: dir,
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

beforeEach(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "mailroom-capture-"));
});
afterEach(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe("capture driver", () => {
  it("is registered with a transport", () => {
    expect(captureDriver.createTransport).toBeTypeOf("function");
  });

  it("stores the full MIME with UTF-8 subject, text, html, an attachment and an inline image intact", async () => {
    const message = sampleMessage();
    const result = await createCaptureTransport(context()).send(message);
    const id = result.providerMessageId ?? "";
    expect(id).toMatch(new RegExp(`^\\d{15}-${message.id}$`));

    const files = await fs.readdir(captureFolder(dataDir, SERVER_ID));
    expect(files).toEqual([`${id}.eml`]);
    const mail = await simpleParser(await fs.readFile(path.join(dataDir, "capture", SERVER_ID, `${id}.eml`)));
    expect(mail.subject).toBe(message.subject);
    expect(mail.text?.trim()).toBe(message.text);
    expect(mail.messageId).toBe(`<${message.messageId}>`);
    expect(mail.attachments.find((a) => a.filename === "bericht-ä.pdf")?.content.equals(PDF)).toBe(true);
    const logo = mail.attachments.find((a) => a.contentId === "<logo@mailroom>");
    expect(logo?.related).toBe(true);
    expect(logo?.content.equals(PNG)).toBe(true);

    const read = await readCaptured(dataDir, SERVER_ID, id);
    expect(read).toBeDefined();
    expect(read?.raw).toContain(`Message-ID: <${message.messageId}>`);
    expect(read?.size).toBe(Buffer.byteLength(read?.raw ?? ""));
    expect(read?.parsed.from).toEqual({ address: "sender@example.com", name: "Zoë Sender" });
    expect(read?.parsed.to).toEqual([{ address: "rcpt@example.org", name: "Jürgen" }]);
    expect(read?.parsed.cc).toEqual([{ address: "cc@example.org" }]);
    expect(read?.parsed.subject).toBe(message.subject);
    expect(read?.parsed.text?.trim()).toBe(message.text);
    expect(read?.parsed.html).toContain('<img src="cid:logo@mailroom">');
    expect(read?.parsed.headers).toContainEqual({ key: "x-mailroom-test", value: "yes" });
    // In MIME order: the inline image sits in the related part, before the attachment.
    expect(read?.parsed.attachments).toEqual([
      { filename: "logo.png", contentType: "image/png", size: PNG.length, contentId: "logo@mailroom" },
      { filename: "bericht-ä.pdf", contentType: "application/pdf", size: PDF.length, contentId: null },
    ]);
    expect(Date.parse(read?.capturedAt ?? "")).toBeGreaterThan(Date.now() - 60_000);
  });

  it("lists newest first with paging and header fields", async () => {
    const transport = createCaptureTransport(context());
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const r = await transport.send(sampleMessage({ subject: `Nachricht ${i} — ü`, to: [{ address: `r${i}@example.org` }] }));
      ids.push(r.providerMessageId ?? "");
    }
    const all = await listCaptured(dataDir, SERVER_ID, { limit: 10, offset: 0 });
    expect(all.total).toBe(5);
    expect(all.items.map((m) => m.subject)).toEqual([5, 4, 3, 2, 1].map((i) => `Nachricht ${i} — ü`));
    expect(all.items[0]).toMatchObject({
      id: ids[4],
      from: { address: "sender@example.com", name: "Zoë Sender" },
      to: [{ address: "r5@example.org" }],
    });
    const stat = await fs.stat(path.join(captureFolder(dataDir, SERVER_ID), `${ids[4]}.eml`));
    expect(all.items[0].size).toBe(stat.size);
    expect(Date.parse(all.items[0].capturedAt)).toBeGreaterThanOrEqual(Date.parse(all.items[1].capturedAt));

    const page = await listCaptured(dataDir, SERVER_ID, { limit: 2, offset: 1 });
    expect(page.total).toBe(5);
    expect(page.items.map((m) => m.id)).toEqual([ids[3], ids[2]]);

    expect(await listCaptured(dataDir, "another-server", { limit: 10, offset: 0 })).toEqual({ items: [], total: 0 });
  });

  it("keeps at most `retention` messages, dropping the oldest", async () => {
    const transport = createCaptureTransport(context({ retention: 3 }));
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push((await transport.send(sampleMessage({ subject: `m${i}` }))).providerMessageId ?? "");
    const list = await listCaptured(dataDir, SERVER_ID, { limit: 10, offset: 0 });
    expect(list.total).toBe(3);
    expect(list.items.map((m) => m.subject)).toEqual(["m5", "m4", "m3"]);
    expect(await readCaptured(dataDir, SERVER_ID, ids[0])).toBeUndefined();
    expect(await readCaptured(dataDir, SERVER_ID, ids[1])).toBeUndefined();
    expect((await fs.readdir(captureFolder(dataDir, SERVER_ID))).sort()).toEqual(ids.slice(2).map((id) => `${id}.eml`));
  });

  it("refuses ids and server ids that would leave the capture folder", async () => {
    await createCaptureTransport(context()).send(sampleMessage());
    // A message file planted beside the folder, and a secret above it.
    await fs.writeFile(path.join(dataDir, "capture", "100000000000000-planted.eml"), "Subject: planted\r\n\r\nx");
    await fs.writeFile(path.join(dataDir, "secret.eml"), "Subject: secret\r\n\r\nx");
    for (const id of [
      "../100000000000000-planted",
      "..%2F100000000000000-planted",
      "../../secret",
      "/etc/passwd",
      "100000000000000-x/../../../secret",
      "",
      ".",
    ]) {
      expect(await readCaptured(dataDir, SERVER_ID, id)).toBeUndefined();
    }
    await expect(listCaptured(dataDir, "../capture", { limit: 10, offset: 0 })).rejects.toThrow(/server id/);
    await expect(readCaptured(dataDir, "..", "100000000000000-planted")).rejects.toThrow(/server id/);
    expect(() => captureFolder(dataDir, "a/b")).toThrow();
  });

  it("check proves the folder is writable and captures nothing", async () => {
    const result = await createCaptureTransport(context()).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.error).toBeUndefined();
    expect(result.steps).toHaveLength(1);
    expect(result.steps[0]).toMatchObject({ step: "folder", ok: true });
    expect(result.steps[0].detail).toContain(captureFolder(dataDir, SERVER_ID));
    expect(await fs.readdir(captureFolder(dataDir, SERVER_ID))).toEqual([]);
  });

  it("check and send report a folder that cannot be written, as the server's fault", async () => {
    // A file where the data folder should be: fails even for root, unlike a chmod.
    const blocked = path.join(dataDir, "not-a-folder");
    await fs.writeFile(blocked, "");
    const transport = createCaptureTransport(context({}, blocked));
    const result = await transport.check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps[0]).toMatchObject({ step: "folder", ok: false });
    expect(result.error?.code).toBe("internal_error");
    expect(result.error?.message).toContain("not writable");

    const err = await transport.send(sampleMessage()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).kind).toBe("server");
  });

  it("forgets a server's messages", async () => {
    await createCaptureTransport(context()).send(sampleMessage());
    await removeCaptured(dataDir, SERVER_ID);
    expect(await listCaptured(dataDir, SERVER_ID, { limit: 10, offset: 0 })).toEqual({ items: [], total: 0 });
  });
});
