/**
 * A local HTTP server that answers as Microsoft Graph's mail API documents it, errors
 * included (https://learn.microsoft.com/graph/api/user-sendmail, …/user-post-messages,
 * …/attachment-createuploadsession, …/message-send):
 *
 * - `POST /v1.0/users/{mailbox}/sendMail`, `Content-Type: text/plain`, the MIME base64 →
 *   202, no body; over 4 MB → 413.
 * - `POST /v1.0/users/{mailbox}/messages` (MIME base64) → 201 `{id}`: a draft.
 * - `POST /v1.0/users/{mailbox}/messages/{id}/attachments/createUploadSession`
 *   `{AttachmentItem: {attachmentType, name, size}}` → 201 `{uploadUrl, expirationDateTime,
 *   nextExpectedRanges}`; `PUT {uploadUrl}` with `Content-Range: bytes a-b/total`, no
 *   Authorization header (401 with one, as Graph documents) → 200 `{nextExpectedRanges}`, the
 *   last 201.
 * - `POST /v1.0/users/{mailbox}/messages/{id}/send` → 202; `DELETE …/messages/{id}` → 204.
 * - `GET /v1.0/users/{mailbox}` → 200 `{mail}` when User.Read.All is granted, else 403
 *   `Authorization_RequestDenied`.
 *
 * Errors are Graph's `{"error": {"code", "message"}}`: 401 `InvalidAuthenticationToken` for a
 * token not accepted, 403 `ErrorAccessDenied` for a mailbox an access policy leaves out, 404
 * `MailboxNotEnabledForRESTAPI`, and scripted faults (429/503 with Retry-After, 400
 * `ErrorInvalidRecipients`). Listens on 127.0.0.1, port 0.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export const GRAPH_LIMIT = 4 * 1024 * 1024;
const CHUNK_MULTIPLE = 320 * 1024;

export type MailboxState = "ok" | "access_denied" | "not_enabled";

export interface GraphSent {
  mailbox: string;
  /** The MIME as Graph received it (decoded). */
  mime: Buffer;
  /** `sendMail`, or `draft` when it went through a draft and upload sessions. */
  via: "sendMail" | "draft";
  /** Attachments that came through upload sessions. */
  uploaded: { name: string; size: number; content: Buffer; chunks: number }[];
}

export interface GraphFault {
  /** The request it answers; any send request (sendMail, draft, send) when absent. */
  on?: "sendMail" | "draft" | "send";
  status: number;
  headers?: Record<string, string>;
  code: string;
  message: string;
}

interface Draft {
  mailbox: string;
  mime: Buffer;
  uploaded: GraphSent["uploaded"];
}

interface Session {
  draft: Draft;
  name: string;
  size: number;
  received: Buffer[];
  next: number;
}

export interface GraphPeer {
  url: string;
  /** Whether a bearer token is accepted (the test says which the issuer handed out). */
  acceptsToken: (token: string) => boolean;
  mailboxes: Map<string, MailboxState>;
  userReadGranted: boolean;
  /** Faults for the next send requests (sendMail, draft, send), in order. */
  faults: GraphFault[];
  sent: GraphSent[];
  drafts: Map<string, Draft>;
  /** Every request: method, path, whether it carried a token (and which). */
  requests: { method: string; path: string; token?: string }[];
  close(): Promise<void>;
}

export async function startGraphPeer(): Promise<GraphPeer> {
  const sessions = new Map<string, Session>();
  const peer: GraphPeer = {
    url: "",
    acceptsToken: () => false,
    mailboxes: new Map(),
    userReadGranted: false,
    faults: [],
    sent: [],
    drafts: new Map(),
    requests: [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const answer = (res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, body === undefined ? headers : { "Content-Type": "application/json", ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  const error = (res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) =>
    answer(
      res,
      status,
      { error: { code, message, innerError: { date: new Date().toISOString(), "request-id": randomUUID() } } },
      headers,
    );

  function handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
    const url = new URL(req.url ?? "/", peer.url);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    peer.requests.push({ method: req.method ?? "", path: url.pathname, token });

    // Upload sessions: pre-authorized URLs; Graph answers 401 to a request that carries a token.
    const upload = /^\/upload\/([\w-]+)$/.exec(url.pathname);
    if (upload && req.method === "PUT") {
      if (req.headers.authorization)
        return error(res, 401, "InvalidAuthenticationToken", "Do not send an Authorization header to an upload URL.");
      const session = sessions.get(upload[1]);
      if (!session || url.searchParams.get("authtoken") !== upload[1])
        return error(res, 404, "itemNotFound", "The upload session does not exist.");
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers["content-range"] ?? ""));
      if (!range || Number(range[1]) !== session.next || Number(range[3]) !== session.size) {
        return error(res, 416, "invalidRange", `Expected the range starting at ${session.next}.`);
      }
      const [from, to] = [Number(range[1]), Number(range[2])];
      const last = to + 1 === session.size;
      if (body.length !== to - from + 1 || (!last && body.length % CHUNK_MULTIPLE !== 0)) {
        return error(res, 400, "invalidRequest", "A chunk must be a multiple of 320 KiB, except the last.");
      }
      session.received.push(body);
      session.next = to + 1;
      if (!last)
        return answer(res, 200, {
          expirationDateTime: new Date(Date.now() + 900_000).toISOString(),
          nextExpectedRanges: [`${session.next}-`],
        });
      sessions.delete(upload[1]);
      session.draft.uploaded.push({
        name: session.name,
        size: session.size,
        content: Buffer.concat(session.received),
        chunks: session.received.length,
      });
      return answer(res, 201, undefined, { Location: `${peer.url}/attachments/${randomUUID()}` });
    }

    if (!token || !peer.acceptsToken(token)) {
      return error(res, 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.");
    }
    const path = /^\/v1\.0\/users\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!path) return error(res, 400, "BadRequest", `Resource not found for the segment '${url.pathname}'.`);
    const mailbox = decodeURIComponent(path[1]).toLowerCase();
    const rest = path[2] ?? "";
    const state = peer.mailboxes.get(mailbox) ?? "ok";

    if (req.method === "GET" && rest === "") {
      if (!peer.userReadGranted)
        return error(res, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.");
      return answer(res, 200, { id: randomUUID(), mail: mailbox, userPrincipalName: mailbox });
    }
    if (state === "not_enabled") {
      return error(
        res,
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
      );
    }
    if (state === "access_denied")
      return error(res, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.");

    const fault = (on: NonNullable<GraphFault["on"]>) => {
      const index = peer.faults.findIndex((f) => f.on === undefined || f.on === on);
      if (index < 0) return false;
      const [next] = peer.faults.splice(index, 1);
      error(res, next.status, next.code, next.message, next.headers);
      return true;
    };
    const mimeOf = (): Buffer | undefined => {
      if (!String(req.headers["content-type"] ?? "").startsWith("text/plain")) {
        error(res, 415, "ErrorInvalidMimeContent", "A MIME message is sent as base64 with Content-Type: text/plain.");
        return undefined;
      }
      if (body.length > GRAPH_LIMIT) {
        error(res, 413, "RequestEntityTooLarge", "The request is larger than 4 MB.");
        return undefined;
      }
      return Buffer.from(body.toString("latin1"), "base64");
    };

    if (req.method === "POST" && rest === "/sendMail") {
      if (fault("sendMail")) return;
      const mime = mimeOf();
      if (!mime) return;
      peer.sent.push({ mailbox, mime, via: "sendMail", uploaded: [] });
      return answer(res, 202);
    }
    if (req.method === "POST" && rest === "/messages") {
      if (fault("draft")) return;
      const mime = mimeOf();
      if (!mime) return;
      const id = `AAMk${randomUUID().replace(/-/g, "")}`;
      peer.drafts.set(id, { mailbox, mime, uploaded: [] });
      return answer(res, 201, { id, isDraft: true });
    }
    const draftPath = /^\/messages\/([\w-]+)(\/.*)?$/.exec(rest);
    const draft = draftPath ? peer.drafts.get(draftPath[1]) : undefined;
    if (!draftPath || !draft || draft.mailbox !== mailbox)
      return error(res, 404, "ErrorItemNotFound", "The specified object was not found in the store.");
    if (req.method === "POST" && draftPath[2] === "/attachments/createUploadSession") {
      const item = (
        JSON.parse(body.toString("utf8") || "{}") as {
          AttachmentItem?: { attachmentType?: string; name?: string; size?: number };
        }
      ).AttachmentItem;
      if (item?.attachmentType !== "file" || typeof item.name !== "string" || typeof item.size !== "number") {
        return error(res, 400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType 'file', a name and a size.");
      }
      const id = randomUUID();
      sessions.set(id, { draft, name: item.name, size: item.size, received: [], next: 0 });
      return answer(res, 201, {
        uploadUrl: `${peer.url}/upload/${id}?authtoken=${id}`,
        expirationDateTime: new Date(Date.now() + 900_000).toISOString(),
        nextExpectedRanges: ["0-"],
      });
    }
    if (req.method === "POST" && draftPath[2] === "/send") {
      if (fault("send")) return;
      peer.drafts.delete(draftPath[1]);
      peer.sent.push({ mailbox, mime: draft.mime, via: "draft", uploaded: draft.uploaded });
      return answer(res, 202);
    }
    if (req.method === "DELETE" && !draftPath[2]) {
      peer.drafts.delete(draftPath[1]);
      return answer(res, 204);
    }
    error(res, 405, "ErrorInvalidRequest", "The OData request is not supported.");
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
