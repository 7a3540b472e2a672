/** A local HTTP receiver for alerts (node:http): records every request, answers what the test says. */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: Record<string, unknown>;
}

export interface Receiver {
  port: number;
  /** http://127.0.0.1:<port>: what MAILROOM_ALLOWED_ENDPOINTS lists for the tests. */
  origin: string;
  url(path?: string): string;
  received: ReceivedRequest[];
  /** The status the next requests get (200 by default), optionally with a body. */
  answer(status: number, body?: string): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const received: ReceivedRequest[] = [];
  let status = 200;
  let reply = "ok";
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {}
      received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body, json });
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  return {
    port,
    origin,
    url: (path = "/hook") => `${origin}${path}`,
    received,
    answer(next, body = "ok") {
      status = next;
      reply = body;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
