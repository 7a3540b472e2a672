/**
 * The real aws-ses-v2-local (Amazon SES v2 API emulator) for tests, run in a child process on
 * a port the OS picks, with an account configured so `GetAccount` answers (it needs the
 * AWS_SES_ACCOUNT environment variable). Mail it accepted is read back from its `/store`.
 *
 * In front of it sits a thin HTTP relay: it records each request (method, path and body, so a test
 * can prove `check` sent nothing) and can be scripted to answer the next N requests as SES
 * answers errors (restJson: the status, `x-amzn-ErrorType`, `{"message": …}`), since the
 * emulator never rejects, throttles or refuses credentials by itself. Everything else goes
 * to the emulator unchanged. Point the driver's endpoint at `endpoint`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface SesStoredAttachment {
  filename?: string;
  contentType: string;
  /** base64 */
  content: string;
  contentId?: string;
  cid?: string;
  related?: boolean;
  contentDisposition?: string;
  size: number;
}

/** An email as aws-ses-v2-local keeps it (raw mail is parsed with mailparser on arrival). */
export interface SesStoredEmail {
  messageId: string;
  from: string;
  replyTo: string[];
  destination: { to: string[]; cc: string[]; bcc: string[] };
  subject: string;
  body: { text?: string; html?: string };
  attachments: SesStoredAttachment[];
  at: number;
}

export interface SesFault {
  status: number;
  /** The error's shape name, e.g. MessageRejected, TooManyRequestsException. */
  type: string;
  message: string;
  headers?: Record<string, string>;
}

export interface SesRequest {
  method: string;
  path: string;
  body: string;
}

export interface SesPeer {
  /** The relay's URL: the SES endpoint for the driver. */
  endpoint: string;
  /** Requests that reached the relay: method, path and body (JSON text for SES v2). */
  requests: SesRequest[];
  emails(): Promise<SesStoredEmail[]>;
  clear(): Promise<void>;
  failNext(times: number, fault: SesFault): void;
  close(): Promise<void>;
}

/** An account that passes aws-ses-v2-local's GetAccount schema. */
const ACCOUNT = {
  DedicatedIpAutoWarmupEnabled: false,
  Details: {
    AdditionalContactEmailAddresses: [],
    ContactLanguage: "EN",
    MailType: "TRANSACTIONAL",
    ReviewDetails: { CaseId: "case-1", Status: "GRANTED" },
    UseCaseDescription: "Mailroom tests",
    WebsiteURL: "https://mailroom.test",
  },
  EnforcementStatus: "HEALTHY",
  ProductionAccessEnabled: true,
  SendingEnabled: true,
  SendQuota: { Max24HourSend: 50000, MaxSendRate: 14, SentLast24Hours: 3 },
  SuppressionAttributes: { SuppressedReasons: ["BOUNCE", "COMPLAINT"] },
};

const CHILD = `
const start = require("aws-ses-v2-local").default;
start({ host: "127.0.0.1", port: 0 }).then((server) => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\\n");
});
process.on("disconnect", () => process.exit(0));
`;

async function startEmulator(account: unknown): Promise<{ child: ChildProcess; port: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_SES_ACCOUNT: JSON.stringify(account) };
  delete env.SMTP_TRANSPORT; // never relay captured mail anywhere
  const child = spawn(process.execPath, ["-e", CHILD], { cwd: process.cwd(), env, stdio: ["ignore", "pipe", "pipe", "ipc"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`aws-ses-v2-local did not start: ${stderr}`)), 20_000);
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`aws-ses-v2-local exited (${code}): ${stderr}`));
    });
  });
  return { child, port };
}

export async function startSesPeer(options: { account?: unknown } = {}): Promise<SesPeer> {
  const { child, port: emulatorPort } = await startEmulator(options.account ?? ACCOUNT);
  const emulator = `http://127.0.0.1:${emulatorPort}`;
  const requests: SesRequest[] = [];
  const faults: SesFault[] = [];

  const relay = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? "GET", path: req.url ?? "/", body: body.toString("utf8") });
      const fault = faults.shift();
      if (fault) {
        res.writeHead(fault.status, {
          "Content-Type": "application/json",
          "x-amzn-ErrorType": fault.type,
          "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
          ...(fault.headers ?? {}),
        });
        res.end(JSON.stringify({ message: fault.message }));
        return;
      }
      const upstream = http.request(
        { host: "127.0.0.1", port: emulatorPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  const { port } = relay.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    async emails() {
      const res = await fetch(`${emulator}/store`);
      return ((await res.json()) as { emails: SesStoredEmail[] }).emails;
    },
    async clear() {
      await fetch(`${emulator}/clear-store`, { method: "POST" });
    },
    failNext(times, fault) {
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    async close() {
      relay.closeAllConnections();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
      if (child.exitCode === null) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}
