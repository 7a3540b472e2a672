/**
 * One small HTTP server that answers as Mailgun's and Postmark's documented APIs do, errors
 * included, so the API drivers can be tested without the internet:
 *
 * - Mailgun: Basic auth `api:<key>` (401 "Forbidden" otherwise), `POST /v3/{domain}/messages.mime`
 *   (multipart: `to`, `message` as a file, `o:tag`) → 200 `{id, message}`, 404 `{message: "Domain
 *   not found: …"}`, 400 on a missing or invalid `to`; `GET /v3/domains/{domain}` → 200 or 404.
 * - Postmark: `X-Postmark-Server-Token` (401 `{ErrorCode: 10}` otherwise), `POST /email` → 200
 *   `{To, SubmittedAt, MessageID, ErrorCode: 0, Message: "OK"}`, 422 `{ErrorCode: 400}` for a
 *   From without a confirmed sender signature, 406 inactive recipient, 300 invalid address;
 *   `GET /server`, `GET /message-streams/{id}`.
 *
 * It records every request, parses Mailgun's multipart body (the MIME is kept for mailparser),
 * and can be scripted to answer the next N requests with a fault (429 with Retry-After, 500,
 * a stall that never answers, or a dropped connection). Listens on 127.0.0.1, port 0.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface PeerRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface MailgunReceived {
  domain: string;
  /** Every `to` field, in order. */
  to: string[];
  tags: string[];
  /** The `message` file part: the full MIME as sent. */
  mime: Buffer;
  /** The file part's name and type. */
  filename: string;
  contentType: string;
  id: string;
}

export interface PostmarkReceived {
  /** The JSON body as sent. */
  email: Record<string, unknown>;
  messageId: string;
}

export type Fault =
  | { status: number; headers?: Record<string, string>; body?: string }
  /** Accept the request and never answer (for timeouts). */
  | { stall: true }
  /** Close the connection without an answer. */
  | { drop: true };

export interface ProviderPeerOptions {
  mailgun?: {
    apiKey: string;
    /** Known sending domains and their state (default "active"). */
    domains: Record<string, string> | string[];
  };
  postmark?: {
    serverToken: string;
    serverName?: string;
    /** Confirmed sender signatures: addresses, or domains as "@example.com". */
    confirmedSenders: string[];
    /** Recipients Postmark marked inactive (hard bounce, complaint). */
    inactiveRecipients?: string[];
    /** Message streams of the server (default ["outbound"]). */
    streams?: string[];
  };
}

export interface ProviderPeer {
  /** http://127.0.0.1:<port>: the API base URL for both providers. */
  url: string;
  requests: PeerRequest[];
  mailgun: MailgunReceived[];
  postmark: PostmarkReceived[];
  /** Answer the next `times` requests (any route) with `fault`, then behave again. */
  failNext(times: number, fault: Fault): void;
  close(): Promise<void>;
}

const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

/** "Name" <a@b> or a@b → a@b; undefined when it is not an address. */
function bareAddress(value: string): string | undefined {
  const angle = /<([^>]*)>\s*$/.exec(value);
  const address = (angle ? angle[1] : value).trim();
  return EMAIL.test(address) ? address.toLowerCase() : undefined;
}

/** Splits a Postmark address list ("a@x, \"B, C\" <b@x>") at commas outside quotes. */
function splitList(list: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === "\\" && quoted) {
      current += c + (list[++i] ?? "");
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) {
      if (current.trim()) out.push(current.trim());
      current = "";
      continue;
    }
    current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

export async function startProviderPeer(options: ProviderPeerOptions): Promise<ProviderPeer> {
  const requests: PeerRequest[] = [];
  const mailgun: MailgunReceived[] = [];
  const postmark: PostmarkReceived[] = [];
  const faults: Fault[] = [];
  const stalled = new Set<http.ServerResponse>();
  const mailgunDomains = options.mailgun
    ? Array.isArray(options.mailgun.domains)
      ? Object.fromEntries(options.mailgun.domains.map((d) => [d, "active"]))
      : options.mailgun.domains
    : {};

  /** Answers; returns true so that handlers can `return send(…)`. */
  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): true => {
    const text = typeof body === "string" ? body : JSON.stringify(body);
    const type = typeof body === "string" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8";
    res.writeHead(status, { "Content-Type": type, ...headers });
    res.end(text);
    return true;
  };

  async function handleMailgun(req: PeerRequest, res: http.ServerResponse, url: URL): Promise<true> {
    const mg = options.mailgun;
    if (!mg) return send(res, 404, "Not Found");
    const auth = req.headers.authorization ?? "";
    const expected = `Basic ${Buffer.from(`api:${mg.apiKey}`).toString("base64")}`;
    // Mailgun answers a wrong or missing key with 401 and the plain text "Forbidden".
    if (auth !== expected) return send(res, 401, "Forbidden");

    const domainMatch = /^\/v3\/domains\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && domainMatch) {
      const name = decodeURIComponent(domainMatch[1]);
      const state = mailgunDomains[name];
      if (!state) return send(res, 404, { message: "Domain not found" });
      return send(res, 200, {
        domain: { name, state, type: "custom", created_at: "Mon, 01 Jan 2024 00:00:00 GMT", spam_action: "disabled" },
        receiving_dns_records: [],
        sending_dns_records: [],
      });
    }

    const sendMatch = /^\/v3\/([^/]+)\/messages\.mime$/.exec(url.pathname);
    if (req.method === "POST" && sendMatch) {
      const domain = decodeURIComponent(sendMatch[1]);
      if (!mailgunDomains[domain]) return send(res, 404, { message: `Domain not found: ${domain}` });
      const contentType = req.headers["content-type"] ?? "";
      if (!contentType.startsWith("multipart/form-data")) {
        return send(res, 400, { message: "'message' parameter is missing" });
      }
      // The fetch standard's own multipart parser reads the form as Mailgun would.
      const form = await new Response(new Uint8Array(req.body), { headers: { "content-type": contentType } }).formData();
      const to = form.getAll("to").map(String);
      const message = form.get("message");
      if (!to.length) return send(res, 400, { message: "'to' parameter is missing" });
      const invalid = to.flatMap((t) => t.split(",")).find((t) => !bareAddress(t.trim()));
      if (invalid !== undefined) {
        return send(res, 400, { message: "'to' parameter is not a valid address. please check documentation" });
      }
      if (!(message instanceof Blob)) return send(res, 400, { message: "'message' parameter is missing" });
      const id = `${Date.now()}.${randomUUID().slice(0, 8)}@${domain}`;
      mailgun.push({
        domain,
        to,
        tags: form.getAll("o:tag").map(String),
        mime: Buffer.from(await message.arrayBuffer()),
        filename: (message as File).name ?? "",
        contentType: message.type,
        id,
      });
      return send(res, 200, { id: `<${id}>`, message: "Queued. Thank you." });
    }
    return send(res, 404, "Not Found");
  }

  function handlePostmark(req: PeerRequest, res: http.ServerResponse, url: URL): true {
    const pm = options.postmark;
    if (!pm) return send(res, 404, "Not Found");
    if (req.headers["x-postmark-server-token"] !== pm.serverToken) {
      return send(res, 401, { ErrorCode: 10, Message: "Request does not contain a valid Server token." });
    }
    const streams = pm.streams ?? ["outbound"];
    if (req.method === "GET" && url.pathname === "/server") {
      // As Postmark does, the answer includes the server's API tokens: a check must not show them.
      return send(res, 200, {
        ID: 1234567,
        Name: pm.serverName ?? "Peer Server",
        ApiTokens: [pm.serverToken],
        Color: "blue",
        SmtpApiActivated: true,
        DeliveryType: "Live",
      });
    }
    const streamMatch = /^\/message-streams\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && streamMatch) {
      const id = decodeURIComponent(streamMatch[1]);
      if (!streams.includes(id)) {
        return send(res, 404, { ErrorCode: 1226, Message: "The message stream for the provided 'ID' was not found." });
      }
      return send(res, 200, { ID: id, ServerID: 1234567, Name: id, MessageStreamType: "Transactional", ArchivedAt: null });
    }
    if (req.method === "POST" && url.pathname === "/email") {
      if (!String(req.headers["content-type"] ?? "").includes("application/json")) {
        return send(res, 415, { ErrorCode: 409, Message: "JSON data required." });
      }
      let email: Record<string, unknown>;
      try {
        email = JSON.parse(req.body.toString("utf8"));
      } catch {
        return send(res, 400, { ErrorCode: 402, Message: "Received invalid JSON input." });
      }
      const from = bareAddress(String(email.From ?? ""));
      if (!from) return send(res, 422, { ErrorCode: 300, Message: "Invalid 'From' address." });
      const confirmed = pm.confirmedSenders.some((s) =>
        s.startsWith("@") ? from.endsWith(s.toLowerCase()) : s.toLowerCase() === from,
      );
      if (!confirmed) {
        return send(res, 422, {
          ErrorCode: 400,
          Message: `The 'From' address you supplied (${String(email.From)}) is not a Sender Signature on your account. Please add and confirm this address in order to be able to use it in the 'From' field of your messages.`,
        });
      }
      const recipients: string[] = [];
      for (const field of ["To", "Cc", "Bcc"]) {
        for (const entry of splitList(String(email[field] ?? ""))) {
          const address = bareAddress(entry);
          if (!address) return send(res, 422, { ErrorCode: 300, Message: `Invalid '${field}' address: '${entry}'.` });
          recipients.push(address);
        }
      }
      if (!recipients.length) return send(res, 422, { ErrorCode: 300, Message: "Zero recipients specified" });
      const inactive = recipients.filter((r) => pm.inactiveRecipients?.some((i) => i.toLowerCase() === r));
      if (inactive.length) {
        return send(res, 422, {
          ErrorCode: 406,
          Message: `You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: ${inactive.join(", ")}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.`,
        });
      }
      const stream = String(email.MessageStream ?? "outbound");
      if (!streams.includes(stream)) {
        return send(res, 422, {
          ErrorCode: 1235,
          Message: `The message stream for the provided 'ID' (${stream}) was not found.`,
        });
      }
      const messageId = randomUUID();
      postmark.push({ email, messageId });
      return send(res, 200, {
        To: String(email.To),
        SubmittedAt: new Date().toISOString(),
        MessageID: messageId,
        ErrorCode: 0,
        Message: "OK",
      });
    }
    return send(res, 404, { ErrorCode: 404, Message: "Not found" });
  }

  const server = http.createServer((incoming, res) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (c: Buffer) => chunks.push(c));
    incoming.on("end", () => {
      const req: PeerRequest = {
        method: incoming.method ?? "GET",
        path: incoming.url ?? "/",
        headers: incoming.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(req);
      const fault = faults.shift();
      if (fault) {
        if ("stall" in fault) {
          stalled.add(res);
          return;
        }
        if ("drop" in fault) {
          incoming.socket.destroy();
          return;
        }
        res.writeHead(fault.status, { "Content-Type": "application/json", ...(fault.headers ?? {}) });
        res.end(fault.body ?? JSON.stringify({ message: "scripted fault" }));
        return;
      }
      const url = new URL(req.path, "http://peer.test");
      const route = url.pathname.startsWith("/v3/") ? handleMailgun(req, res, url) : handlePostmark(req, res, url);
      Promise.resolve(route).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, { message: String(err) });
      });
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    mailgun,
    postmark,
    failNext(times, fault) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    async close() {
      for (const res of stalled) res.socket?.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
