import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

export interface MailroomProcess {
  child: ChildProcess;
  /** The base URL it listens on, read from its first-start output. */
  url: string;
  output: () => string;
  /** Waits for the process to exit (after a signal). */
  exited: Promise<number | null>;
}

const BIN = path.resolve("bin/mailroom.js");

/** Starts `mailroom serve` as a real process (dist/ is built by test/global-setup.ts). The limit only ends a start that hangs: a loaded machine can take 20 s. */
export async function spawnMailroom(env: Record<string, string>, timeoutMs = 60_000): Promise<MailroomProcess> {
  const child = spawn(process.execPath, [BIN, "serve"], {
    env: { ...process.env, MAILROOM_PORT: "0", MAILROOM_SMTP_PORT: "0", MAILROOM_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running behind a failed test (it would still deliver and hold the database).
      child.kill("SIGKILL");
      reject(new Error(`mailroom did not start in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const look = () => {
      const match = /listening on (http:\/\/[^\s)]+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout?.on("data", look);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`mailroom exited with ${code}:\n${out}`));
    });
  });
  return { child, url, output: () => out, exited };
}
