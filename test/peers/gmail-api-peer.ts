/**
 * A local HTTP server that answers as the Gmail API documents users.messages.send and
 * users.getProfile (https://developers.google.com/gmail/api/reference/rest/v1/users.messages/send,
 * https://developers.google.com/gmail/api/guides/uploads), errors included:
 *
 * - `POST /gmail/v1/users/me/messages/send` with JSON `{raw: base64url}` → 200 `{id, threadId, labelIds}`.
 * - `POST /upload/gmail/v1/users/me/messages/send?uploadType=media`, `Content-Type:
 *   message/rfc822`, the MIME bytes → the same; over 35 MB → 413.
 * - `GET /gmail/v1/users/me/profile` → 200 `{emailAddress, …}` with a read scope, else 403
 *   `insufficientPermissions` (gmail.send alone cannot read it).
 *
 * Errors are Google's `{"error": {"code", "message", "errors": [{"reason"}], "status"}}`: 401
 * `authError` for a token not accepted, 403 `insufficientPermissions` for a token without
 * gmail.send, 403 `accessNotConfigured` when the project has not enabled the API, and
 * scripted faults (429 `userRateLimitExceeded` with Retry-After, 400 `Invalid To header`).
 * Listens on 127.0.0.1, port 0.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export const GMAIL_MAX = 35 * 1024 * 1024;

export type AccountState = "ok" | "scope_missing" | "api_disabled";

export interface GmailSent {
  mime: Buffer;
  via: "simple" | "media";
  id: string;
}

export interface GoogleFault {
  status: number;
  reason: string;
  message: string;
  headers?: Record<string, string>;
}

export interface GmailApiPeer {
  url: string;
  acceptsToken: (token: string) => boolean;
  /** The account the profile names. */
  account: string;
  state: AccountState;
  /** A read scope (gmail.metadata or more) was granted: getProfile answers. */
  profileReadable: boolean;
  /** Faults for the next sends, in order. */
  faults: GoogleFault[];
  sent: GmailSent[];
  requests: { method: string; path: string; token?: string }[];
  close(): Promise<void>;
}

const STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  413: "INVALID_ARGUMENT",
  429: "RESOURCE_EXHAUSTED",
};

export async function startGmailApiPeer(account: string): Promise<GmailApiPeer> {
  const peer: GmailApiPeer = {
    url: "",
    acceptsToken: () => false,
    account,
    state: "ok",
    profileReadable: false,
    faults: [],
    sent: [],
    requests: [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const answer = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "Content-Type": "application/json; charset=UTF-8", ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (
    res: http.ServerResponse,
    status: number,
    reason: string,
    message: string,
    headers: Record<string, string> = {},
  ) =>
    answer(
      res,
      status,
      { error: { code: status, message, errors: [{ message, domain: "global", reason }], status: STATUS[status] ?? "UNKNOWN" } },
      headers,
    );

  function handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
    const url = new URL(req.url ?? "/", peer.url);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    peer.requests.push({ method: req.method ?? "", path: `${url.pathname}${url.search}`, token });
    if (!token || !peer.acceptsToken(token)) {
      return error(res, 401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token.");
    }
    if (peer.state === "api_disabled") {
      return error(res, 403, "accessNotConfigured", "Gmail API has not been used in project 1234 before or it is disabled.");
    }
    if (req.method === "GET" && url.pathname === "/gmail/v1/users/me/profile") {
      if (!peer.profileReadable)
        return error(res, 403, "insufficientPermissions", "Request had insufficient authentication scopes.");
      return answer(res, 200, { emailAddress: peer.account, messagesTotal: 12, threadsTotal: 9, historyId: "4711" });
    }
    const simple = url.pathname === "/gmail/v1/users/me/messages/send";
    const media = url.pathname === "/upload/gmail/v1/users/me/messages/send";
    if (req.method !== "POST" || !(simple || media)) return error(res, 404, "notFound", "Not Found");
    if (peer.state === "scope_missing")
      return error(res, 403, "insufficientPermissions", "Request had insufficient authentication scopes.");
    const fault = peer.faults.shift();
    if (fault) return error(res, fault.status, fault.reason, fault.message, fault.headers);

    let mime: Buffer;
    if (simple) {
      const raw = (JSON.parse(body.toString("utf8") || "{}") as { raw?: unknown }).raw;
      if (typeof raw !== "string" || raw === "")
        return error(
          res,
          400,
          "invalidArgument",
          "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        );
      mime = Buffer.from(raw, "base64url");
    } else {
      if (url.searchParams.get("uploadType") !== "media") return error(res, 400, "badRequest", "Invalid upload type.");
      if (req.headers["content-type"] !== "message/rfc822") return error(res, 400, "badContent", "Media type is not supported.");
      if (body.length > GMAIL_MAX) return error(res, 413, "uploadTooLarge", "Request entity too large.");
      mime = body;
    }
    const headers = mime.toString("latin1").split(/\r?\n\r?\n/)[0];
    if (!/^(To|Cc|Bcc):/im.test(headers)) return error(res, 400, "invalidArgument", "Recipient address required");
    const id = randomUUID().replace(/-/g, "").slice(0, 16);
    peer.sent.push({ mime, via: simple ? "simple" : "media", id });
    answer(res, 200, { id, threadId: id, labelIds: ["SENT"] });
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return peer;
}
