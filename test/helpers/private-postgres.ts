/**
 * A PostgreSQL cluster of the test's own (Debian's initdb and pg_ctl, a temporary folder, a
 * free port), for drills that stop and start the database: the shared server on 5432 is
 * never touched. As root, the cluster runs as the `postgres` user (PostgreSQL refuses root).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { tempDir } from "./databases.js";

export interface PrivateCluster {
  port: number;
  /** A connection URL for `database` (default: postgres) as the superuser, trust auth. */
  url(database?: string): string;
  /** `pg_ctl stop`: "fast" ends every session with 57P01, as a restart does. */
  stop(mode?: "fast" | "immediate"): void;
  start(): void;
  /** Stops it and removes its folder. */
  destroy(): void;
}

/** The bin folder of the newest PostgreSQL installed, or null. */
export function postgresBinDir(): string | null {
  const root = "/usr/lib/postgresql";
  if (!fs.existsSync(root)) return null;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0], "bin") : null;
}

/** Why a private cluster cannot be started here, or null. */
export function privateClusterUnavailableReason(): string | null {
  if (!postgresBinDir()) return "initdb was not found under /usr/lib/postgresql/*/bin (install the postgresql package)";
  if (process.getuid?.() === 0 && !postgresUser()) return "running as root, and there is no postgres user to run initdb as";
  return null;
}

function postgresUser(): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(privateClusterUnavailableReason() ?? "no PostgreSQL");
  const root = tempDir("mailroom-pg-");
  const data = path.join(root, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const user = postgresUser();
    if (!user) throw new Error("no postgres user");
    fs.chownSync(root, user.uid, user.gid);
  }
  const run = (program: string, args: string[]) => {
    const [command, argv] = asRoot
      ? ["runuser", ["-u", "postgres", "--", path.join(bin, program), ...args]]
      : [path.join(bin, program), args];
    execFileSync(command, argv, { stdio: "pipe", cwd: root });
  };
  run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
  const port = await freePort();
  // Its own socket folder and port; fsync off: the drill is about connections, not durability.
  const options = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = () => run("pg_ctl", ["-D", data, "-l", path.join(root, "server.log"), "-o", options, "-w", "start"]);
  start();
  return {
    port,
    url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`,
    stop: (mode = "fast") => run("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"]),
    start,
    destroy() {
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        // Already stopped.
      }
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
