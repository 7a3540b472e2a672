/**
 * What the provider event tests share: signing as Mailgun and SNS sign (written from their
 * documentation, not from Mailroom's code, so a mistake there is not mirrored here), a local
 * peer that serves an SNS signing certificate and answers a SubscribeURL, and the steps of
 * sending a message through a real driver until it is `sent` with its provider's id.
 */
import { createHmac, createSign, generateKeyPairSync, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { generate } from "selfsigned";
import { expect } from "vitest";
import type { Caller, TestApp } from "../helpers/app.js";
import { waitFor } from "../helpers/wait.js";

// ---- Mailgun: HMAC-SHA256(signing key, timestamp + token), hex ----

export function mailgunBody(
  eventData: Record<string, unknown>,
  signingKey: string,
  options: { timestamp?: number; token?: string } = {},
): Record<string, unknown> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const token = options.token ?? randomBytes(25).toString("hex");
  const signature = createHmac("sha256", signingKey).update(`${timestamp}${token}`).digest("hex");
  return { signature: { timestamp, token, signature }, "event-data": eventData };
}

// ---- SNS: SignatureVersion 1 (SHA1withRSA) and 2 (SHA256withRSA) over "Name\nvalue\n" ----

export interface SnsSigningKey {
  privateKey: string;
  certificate: string;
}

/** A real RSA key and a self-signed certificate for it, as SNS's signing certificate stands in. */
export async function snsSigningKey(): Promise<SnsSigningKey> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const pems = await generate([{ name: "commonName", value: "sns.amazonaws.com" }], {
    keyPair: { privateKey, publicKey },
    algorithm: "sha256",
  });
  return { privateKey, certificate: pems.cert };
}

export type SnsFields = Record<string, string>;

/** Signs an SNS message the way the SNS documentation describes, and adds the signature fields. */
export function signSns(fields: SnsFields, key: SnsSigningKey, certUrl: string, version: "1" | "2" = "1"): SnsFields {
  const order =
    fields.Type === "Notification"
      ? ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
      : ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"];
  let text = "";
  for (const name of order) if (fields[name] !== undefined) text += `${name}\n${fields[name]}\n`;
  const signature = createSign(version === "1" ? "RSA-SHA1" : "RSA-SHA256")
    .update(text)
    .sign(key.privateKey, "base64");
  return { ...fields, SignatureVersion: version, Signature: signature, SigningCertURL: certUrl };
}

/** An SNS Notification carrying SES's JSON (as in the SES notification examples). */
export function snsNotification(ses: unknown, topicArn = "arn:aws:sns:us-east-1:123456789012:ses-events"): SnsFields {
  return {
    Type: "Notification",
    MessageId: `sns-${randomBytes(8).toString("hex")}`,
    TopicArn: topicArn,
    Subject: "Amazon SES Email Event Notification",
    Message: `${JSON.stringify(ses)}\n`,
    Timestamp: new Date().toISOString(),
    UnsubscribeURL:
      "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:ses-events:1",
  };
}

export interface SnsPeer {
  /** http://127.0.0.1:<port> */
  url: string;
  certUrl: string;
  /** Every request it received (path with query). */
  requests: string[];
  close(): Promise<void>;
}

/** Serves the certificate at /SimpleNotificationService-test.pem and answers /confirm (a SubscribeURL). */
export async function startSnsPeer(certificate: string): Promise<SnsPeer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? "/");
    if (req.url === "/SimpleNotificationService-test.pem") {
      res.writeHead(200, { "content-type": "application/x-pem-file" }).end(certificate);
    } else if (req.url?.startsWith("/confirm?")) {
      res
        .writeHead(200, { "content-type": "text/xml" })
        .end(
          "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:123456789012:ses-events:1</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
        );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    certUrl: `${url}/SimpleNotificationService-test.pem`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ---- Mailroom ----

/** Sends one message through `server` and waits until the worker has it `sent`; answers its row. */
export async function sendAndSettle(t: TestApp, caller: Caller, server: string, to: string | string[]) {
  const res = await t.request(caller, {
    method: "POST",
    url: "/api/messages",
    payload: { server, to, subject: "Provider events", text: "Hello." },
  });
  expect(res.statusCode, res.body).toBe(202);
  const id = res.json().id as string;
  return waitFor(`message ${id} sent`, async () => {
    const row = await t.mailroom.messages.findRow(id);
    if (row?.status === "failed") throw new Error(`the message failed: ${row.last_error}`);
    return row?.status === "sent" && row.provider_message_id ? row : null;
  });
}

export async function messageView(t: TestApp, id: string) {
  const res = await t.request(t.admin, { method: "GET", url: `/api/messages/${id}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

export async function suppressionsOf(t: TestApp, q = "") {
  const res = await t.request(t.admin, { method: "GET", url: `/api/suppressions?limit=500${q}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().items as {
    id: string;
    address: string;
    server: { id: string } | null;
    reason: string;
    messageId: string | null;
  }[];
}

/** Every row of the database, as text: tests search it for a secret. */
export async function databaseText(t: TestApp): Promise<string> {
  const db = t.mailroom.ctx.db;
  const tables = [
    "event_sources",
    "audit_log",
    "message_events",
    "suppressions",
    "app_settings",
    "provider_event_nonces",
  ] as const;
  const parts: string[] = [];
  for (const table of tables) parts.push(JSON.stringify(await db.selectFrom(table).selectAll().execute()));
  return parts.join("\n");
}
