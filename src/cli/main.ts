import { parseArgs } from "node:util";
import { createMailroom } from "../app.js";
import { isPermission, permissions } from "../auth/permissions.js";
import { type Config, ConfigError, loadConfig } from "../config.js";
import { cliActor } from "../core/audit.js";
import { eraseRecipientData } from "../core/erasure.js";
import { MailroomError } from "../kernel/errors.js";
import { migrateToLatest } from "../storage/db.js";
import { backupCommand, restoreCommand } from "./backup.js";
import { keysCommand } from "./keys.js";
import { startMailroom, welcomeText } from "./serve.js";
import { serversCommand } from "./servers.js";

const USAGE = `Usage: mailroom <command> [options]

Commands:
  serve                         start the API, the admin UI and the delivery workers
  migrate                       bring the database schema up to date
  user create <email> [--name N] [--super-admin]
                                create a user; prints a one-time password
  user reset-password <email>   set a new one-time password
  token create --name N --permission P [--permission P…] [--server S…]
                                create an API token (printed once)
  servers list|show <server>    the email servers
  servers export [--format yaml|json] [--output FILE]
                                write the servers, secrets as \${ENV} placeholders
  servers import FILE [--dry-run]
                                create or update servers from an export
  keys rotate                   re-encrypt every secret with a new key
  erase <address> [--rebuild]   erase every stored body and copy of mail to an address
                                (--rebuild: SQLite also rebuilds the file, VACUUM; see docs/operations.md)
  backup --output FILE          copy the SQLite database while Mailroom runs (the key is not in it)
  restore --input FILE          replace the SQLite database by a backup (Mailroom stopped)

Options for every command (each also read from the environment):
  --port N (MAILROOM_PORT)  --host H (MAILROOM_HOST)  --public-url U (MAILROOM_PUBLIC_URL)
  --data-dir D (MAILROOM_DATA_DIR)  --database-url U (DATABASE_URL)
Permissions: ${permissions.join(", ")}`;

const globalOptions = {
  port: { type: "string" },
  host: { type: "string" },
  "public-url": { type: "string" },
  "data-dir": { type: "string" },
  "database-url": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function configFrom(values: Record<string, unknown>): Config {
  const env = { ...process.env };
  // Flags go through the same checks as the environment variables they stand for.
  if (values.port !== undefined) env.MAILROOM_PORT = String(values.port);
  if (values.host !== undefined) env.MAILROOM_HOST = String(values.host);
  if (values["public-url"] !== undefined) env.MAILROOM_PUBLIC_URL = String(values["public-url"]);
  if (values["data-dir"] !== undefined) env.MAILROOM_DATA_DIR = String(values["data-dir"]);
  if (values["database-url"] !== undefined) env.DATABASE_URL = String(values["database-url"]);
  return loadConfig(env);
}

/** Opens the database, runs `fn`, closes it. For the one-shot commands. */
async function withMailroom<T>(config: Config, fn: (m: ReturnType<typeof createMailroom>) => Promise<T>): Promise<T> {
  const mailroom = createMailroom(config);
  try {
    await migrateToLatest(mailroom.ctx.db);
    return await fn(mailroom);
  } finally {
    await mailroom.close();
  }
}

async function serve(config: Config): Promise<number> {
  const running = await startMailroom(config);
  console.log(welcomeText(running));
  // SIGHUP: the renewed SMTP certificate files are read again, without a restart.
  const reload = () => {
    running.mailroom.smtp.reloadCertificate().then(
      (cert) => running.mailroom.ctx.log.info({ fingerprint: cert.fingerprint }, "SMTP certificate reloaded"),
      (error: unknown) => running.mailroom.ctx.log.error({ err: error }, "SMTP certificate not reloaded; the previous one stays"),
    );
  };
  process.on("SIGHUP", reload);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  process.off("SIGHUP", reload);
  await running.stop();
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let config: Config | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...globalOptions,
        name: { type: "string" },
        "super-admin": { type: "boolean" },
        permission: { type: "string", multiple: true },
        server: { type: "string", multiple: true },
        format: { type: "string" },
        output: { type: "string", short: "o" },
        input: { type: "string", short: "i" },
        "dry-run": { type: "boolean" },
        rebuild: { type: "boolean" },
      },
    });
    const [command, sub, arg] = positionals;
    if (values.help || !command) {
      console.log(USAGE);
      return command || values.help ? 0 : 2;
    }
    config = configFrom(values);
    switch (command) {
      case "serve":
        return await serve(config);
      case "migrate": {
        const mailroom = createMailroom(config);
        try {
          const done = await migrateToLatest(mailroom.ctx.db);
          console.log(done.length ? `Applied: ${done.join(", ")}` : "The database is up to date.");
        } finally {
          await mailroom.close();
        }
        return 0;
      }
      case "user":
        return await withMailroom(config, async (m) => {
          if (!arg || (sub !== "create" && sub !== "reset-password")) return usageError("user create|reset-password <email>");
          if (sub === "create") {
            const { user, generatedPassword } = await m.users.create(
              { email: arg, name: values.name, superAdmin: values["super-admin"] ?? false },
              cliActor,
            );
            console.log(`Created ${user.superAdmin ? "super admin " : "user "}${user.email}.`);
            console.log(`One-time password: ${generatedPassword}`);
            return 0;
          }
          const password = await m.users.resetPassword(arg, cliActor);
          console.log(`New one-time password for ${arg}: ${password}`);
          return 0;
        });
      case "token":
        return await withMailroom(config, async (m) => {
          if (sub !== "create" || !values.name || !values.permission?.length) {
            return usageError("token create --name NAME --permission PERMISSION [--server SERVER]");
          }
          const bad = values.permission.find((p) => !isPermission(p));
          if (bad) return usageError(`unknown permission '${bad}': use any of ${permissions.join(", ")}`);
          const serverIds = [];
          for (const s of values.server ?? []) serverIds.push((await m.servers.getRow(s)).id);
          const { token, view } = await m.tokens.create(
            { name: values.name, permissions: values.permission, serverIds },
            cliActor,
            null,
          );
          console.log(`Created token '${view.name}' with ${view.permissions.join(", ")}. It is shown once:`);
          console.log(token);
          return 0;
        });
      case "servers":
        return await withMailroom(config, (m) => serversCommand(m, sub, arg, values));
      case "keys":
        if (sub !== "rotate") return usageError("keys rotate");
        return await keysCommand(config);
      case "erase":
        if (!sub) return usageError("erase <address>");
        return await withMailroom(config, async (m) => {
          const report = await eraseRecipientData(m.ctx, sub, cliActor, { rebuild: values.rebuild === true });
          console.log(eraseSummary(report));
          return 0;
        });
      case "backup":
        return await backupCommand(config, values.output);
      case "restore":
        return await restoreCommand(config, values.input);
      default:
        return usageError(`unknown command '${command}'`);
    }
  } catch (error) {
    if (error instanceof ConfigError || error instanceof MailroomError) {
      console.error(`mailroom: ${error.message}`);
      return 1;
    }
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) return usageError((error as Error).message);
    const hint = settingHint(error, config);
    if (hint) {
      console.error(`mailroom: ${hint}`);
      return 1;
    }
    throw error;
  }
}

/**
 * Failures that come from a setting (a port in use, a database that does not answer):
 * one line naming the variable to fix, not a stack trace.
 */
function settingHint(error: unknown, config: Config | undefined): string | null {
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  switch (e?.code) {
    case "EADDRINUSE":
      return `port ${e.port ?? config?.port} is in use by another program: set MAILROOM_PORT (or --port) to a free port.`;
    case "EACCES":
      return e.syscall === "listen"
        ? `not allowed to listen on port ${e.port ?? config?.port}: set MAILROOM_PORT (or --port) to a port above 1023.`
        : null;
    case "EADDRNOTAVAIL":
      return `MAILROOM_HOST=${config?.host} is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its addresses.`;
  }
  if ((e?.code === "ENOENT" || e?.code === "EACCES" || e?.code === "EPERM" || e?.code === "ENOTDIR") && e.path) {
    // A file named on the command line (import, --output) or the data folder.
    const why = e.code === "ENOENT" || e.code === "ENOTDIR" ? "no such file or directory" : "permission denied";
    return `cannot use ${e.path}: ${why}.`;
  }
  if (config?.databaseUrl && e?.code && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|28P01|28000|3D000)$/.test(e.code)) {
    // pg's own message names the user or database, never the password.
    const reason = e.message || e.code;
    return `cannot use the database in DATABASE_URL (${reason}): check its host, port, user, password and database name.`;
  }
  return null;
}

function eraseSummary(r: Awaited<ReturnType<typeof eraseRecipientData>>): string {
  return [
    `Erased: ${r.messages} message(s) named the address (${r.cancelled} not yet sent, now never to be sent),`,
    `${r.rawCopies} raw cop(ies), ${r.capturedCopies} captured cop(ies), ${r.attempts} attempt transcript(s), ${r.auditEntries} earlier audit entr(ies).`,
    `In the rows kept the address is now ${r.replacement}; the audit log records the erasure as ${r.addressHash}.`,
  ].join("\n");
}

function usageError(message: string): number {
  console.error(`mailroom: ${message}\nRun 'mailroom --help' for the commands.`);
  return 2;
}
