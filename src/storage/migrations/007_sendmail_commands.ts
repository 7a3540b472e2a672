import type { Kysely } from "kysely";

/** The program every earlier sendmail server ran by default; the default command runs it too. */
const SYSTEM_SENDMAIL = "/usr/sbin/sendmail";

/**
 * Sendmail servers named a program and free-form arguments; now they name a command the
 * operator declared (MAILROOM_SENDMAIL_COMMANDS). A server that ran the system's sendmail
 * as shipped gets the default command "sendmail"; any other program is not carried over
 * (settings may no longer name one): the server becomes incomplete until an admin picks a
 * command, and its mail waits.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // biome-ignore lint/suspicious/noExplicitAny: a migration sees the schema as it was then, not schema.ts
  const old = db as Kysely<any>;
  const rows: { id: string; settings: string; status: string }[] = await old
    .selectFrom("email_servers")
    .select(["id", "settings", "status"])
    .where("driver", "=", "sendmail")
    .execute();
  for (const row of rows) {
    const settings = JSON.parse(row.settings) as Record<string, unknown>;
    if (settings.command !== undefined) continue;
    const program = typeof settings.path === "string" && settings.path.trim() ? settings.path.trim() : SYSTEM_SENDMAIL;
    const args = typeof settings.arguments === "string" ? settings.arguments.trim() : "";
    delete settings.path;
    delete settings.arguments;
    const asShipped = program === SYSTEM_SENDMAIL && (args === "" || args === "-i");
    if (asShipped) settings.command = "sendmail";
    await old
      .updateTable("email_servers")
      .set({ settings: JSON.stringify(settings), status: asShipped ? row.status : "incomplete" })
      .where("id", "=", row.id)
      .execute();
  }
}
