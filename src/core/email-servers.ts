import { type Kysely, sql } from "kysely";
import { driverIds, findDriver } from "../drivers/registry.js";
import type { Driver } from "../drivers/types.js";
import { grantNotice } from "../oauth/grant-notice.js";
import type { Database, EmailServersTable } from "../storage/schema.js";
import { type Actor, SECRET_CHANGED, SECRET_UNCHANGED, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";
import { type FieldProblem, fieldError, MailroomError } from "./errors.js";
import { iso, newId } from "./ids.js";
import {
  checkValue,
  defaultValue,
  isEmptySetting,
  missingSettings,
  parseSettings,
  type Settings,
  type SettingValue,
} from "./settings.js";
import { hasControlCharacters, isEmailAddress } from "./validate.js";

export type ServerStatus = "ready" | "incomplete" | "not_authorized" | "reauthorization_required" | "failing";
export type ServerFault = "failing" | "reauthorization_required";

/** An email server as the API shows it: secrets only as {set}, read-only values derived. */
export interface EmailServerView {
  id: string;
  name: string;
  driver: string;
  fromAddress: string;
  fromName: string;
  isDefault: boolean;
  status: ServerStatus;
  statusDetail: string | null;
  missingSettings: string[];
  settings: Record<string, SettingValue | { set: boolean } | null>;
  /** When the OAuth grant itself ends, if the provider said (Microsoft, Google's Testing apps). */
  oauthExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface EmailServerInput {
  name: string;
  driver: string;
  fromAddress?: string;
  fromName?: string;
  settings?: Record<string, unknown>;
  isDefault?: boolean;
}

type Row = EmailServersTable;
type SecretMap = Record<string, string>;

const NAME_MAX = 64;
/** Advisory lock key for changes of the default server (any constant unique to this purpose). */
const DEFAULT_SERVER_LOCK = 0x6d72_6466;

function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export class EmailServerService {
  constructor(private readonly ctx: AppContext) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  // ---- reading ----

  async list(
    options: { q?: string; limit?: number; offset?: number } = {},
  ): Promise<{ items: EmailServerView[]; total: number }> {
    let query = this.db.selectFrom("email_servers");
    const q = options.q?.trim().toLowerCase();
    if (q) {
      const pattern = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      query = query.where(sql<boolean>`search_text like ${pattern} escape '\\'`);
    }
    const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
    const rows = await query
      .selectAll()
      .orderBy(sql`coalesce(is_default, 0)`, "desc")
      .orderBy("name")
      .limit(options.limit ?? 50)
      .offset(options.offset ?? 0)
      .execute();
    return { items: rows.map((r) => this.toView(r)), total: Number(total) };
  }

  /** Finds a server by id, or by name (case-insensitive). */
  async findRow(idOrName: string, db: Kysely<Database> = this.db): Promise<Row | undefined> {
    return db
      .selectFrom("email_servers")
      .selectAll()
      .where((eb) => eb.or([eb("id", "=", idOrName), eb(sql`lower(name)`, "=", idOrName.toLowerCase())]))
      .executeTakeFirst();
  }

  async getRow(idOrName: string, db: Kysely<Database> = this.db): Promise<Row> {
    const row = await this.findRow(idOrName, db);
    if (!row) throw new MailroomError("email_server_not_found", `No email server has the id or name '${idOrName}'.`);
    return row;
  }

  async get(idOrName: string): Promise<EmailServerView> {
    return this.toView(await this.getRow(idOrName));
  }

  async getDefaultRow(): Promise<Row | undefined> {
    return this.db.selectFrom("email_servers").selectAll().where("is_default", "=", 1).executeTakeFirst();
  }

  /** Decrypted secrets of a server, for the code that sends. Never for a response. */
  secretsOf(row: Row): Record<string, string> {
    const stored = parseJson<SecretMap>(row.secrets);
    return Object.fromEntries(Object.entries(stored).map(([k, v]) => [k, this.ctx.secrets.decrypt(v)]));
  }

  toView(row: Row): EmailServerView {
    const driver = this.driverOf(row);
    const stored = parseJson<Settings>(row.settings);
    const secretKeys = Object.keys(parseJson<SecretMap>(row.secrets));
    const derived: Record<string, string | null> = {
      ...(driver.derive?.({ publicUrl: this.ctx.config.publicUrl }) ?? {}),
      ...(driver.oauthProvider
        ? { authorizedAccount: row.oauth_account, grantedScopes: row.oauth_scopes, authorizedAt: iso(row.oauth_authorized_at) }
        : {}),
    };
    const settings: EmailServerView["settings"] = {};
    for (const f of driver.fields) {
      if (f.secret) settings[f.key] = { set: secretKeys.includes(f.key) };
      else if (f.readOnly) settings[f.key] = derived[f.key] ?? null;
      else settings[f.key] = stored[f.key] ?? null;
    }
    const missing = this.missing(driver, row, stored, secretKeys);
    return {
      id: row.id,
      name: row.name,
      driver: row.driver,
      fromAddress: row.from_address,
      fromName: row.from_name,
      isDefault: row.is_default === 1,
      status: row.status as ServerStatus,
      statusDetail: this.statusDetail(row, missing),
      missingSettings: missing,
      settings,
      oauthExpiresAt: iso(row.oauth_expires_at),
      createdAt: iso(row.created_at) as string,
      updatedAt: iso(row.updated_at) as string,
    };
  }

  // ---- writing ----

  /**
   * Checks an input the way create and replace do, without writing anything: `servers
   * import` checks every server of a file first, so a bad one cannot stop it half-way.
   */
  checkInput(input: EmailServerInput): void {
    const driver = this.requireDriver(input.driver);
    this.checkServerFields(input);
    const parsed = parseSettings(driver, input.settings ?? {});
    if (parsed.problems.length) throw settingsError(parsed);
  }

  async create(input: EmailServerInput, actor: Actor): Promise<EmailServerView> {
    const driver = this.requireDriver(input.driver);
    const base = this.checkServerFields(input);
    const parsed = parseSettings(driver, input.settings ?? {});
    if (parsed.problems.length) throw settingsError(parsed);
    const secrets: SecretMap = {};
    for (const [key, value] of Object.entries(parsed.secretChanges)) {
      if (value !== null) secrets[key] = this.ctx.secrets.encrypt(value);
    }
    const row = freshRow({
      id: newId(),
      name: base.name,
      driver: driver.id,
      from_address: base.fromAddress,
      from_name: base.fromName,
      settings: JSON.stringify(parsed.settings),
      secrets: JSON.stringify(secrets),
    });
    this.refreshDerived(row);
    return this.write(async (trx) => {
      await this.lockDefault(trx);
      await this.assertNameFree(trx, row.name);
      const anyDefault = await trx.selectFrom("email_servers").select("id").where("is_default", "=", 1).executeTakeFirst();
      if (input.isDefault || !anyDefault) {
        await trx.updateTable("email_servers").set({ is_default: null }).where("is_default", "=", 1).execute();
        row.is_default = 1;
      }
      await trx.insertInto("email_servers").values(row).execute();
      await writeAudit(trx, actor, {
        action: "email_server.create",
        targetType: "email_server",
        targetId: row.id,
        after: this.auditView(row, Object.keys(secrets)),
      });
      return row;
    });
  }

  /**
   * An unsaved configuration, checked like a save, for testing before saving. Secrets left
   * out are borrowed from the saved server `basedOn` (the form being edited), as is its grant.
   */
  async draft(input: EmailServerInput, basedOn?: string): Promise<{ row: Row; secrets: Record<string, string> }> {
    const driver = this.requireDriver(input.driver);
    const base = this.checkServerFields({ ...input, name: input.name || "Draft" });
    const parsed = parseSettings(driver, input.settings ?? {});
    if (parsed.problems.length) throw fieldError("invalid_setting", parsed.problems);
    const saved = basedOn ? await this.getRow(basedOn) : undefined;
    const secrets: Record<string, string> = saved && saved.driver === driver.id ? this.secretsOf(saved) : {};
    for (const [key, value] of Object.entries(parsed.secretChanges)) {
      if (value === null) delete secrets[key];
      else secrets[key] = value;
    }
    const row: Row = {
      ...freshRow({
        id: saved?.id ?? "draft",
        name: base.name,
        driver: driver.id,
        from_address: base.fromAddress,
        from_name: base.fromName,
        settings: JSON.stringify(parsed.settings),
        secrets: "{}",
      }),
      // The saved server's grant: a draft of it tests with its authorized account.
      oauth_account: saved?.oauth_account ?? null,
      oauth_scopes: saved?.oauth_scopes ?? null,
      oauth_authorized_at: saved?.oauth_authorized_at ?? null,
      oauth_expires_at: saved?.oauth_expires_at ?? null,
    };
    return { row, secrets };
  }

  /** PUT: replaces the whole configuration at once. Omitted secrets keep their value. */
  async replace(idOrName: string, input: EmailServerInput, actor: Actor): Promise<EmailServerView> {
    const driver = this.requireDriver(input.driver);
    const base = this.checkServerFields(input);
    const parsed = parseSettings(driver, input.settings ?? {});
    if (parsed.problems.length) throw settingsError(parsed);
    return this.write(async (trx) => {
      if (input.isDefault) await this.lockDefault(trx);
      const before = await this.getRow(idOrName, trx);
      if (base.name.toLowerCase() !== before.name.toLowerCase()) await this.assertNameFree(trx, base.name, before.id);
      // Secrets of the old driver mean nothing to a new one.
      const kept = before.driver === driver.id ? parseJson<SecretMap>(before.secrets) : {};
      const secrets: SecretMap = {};
      for (const f of driver.fields.filter((x) => x.secret)) {
        const change = parsed.secretChanges[f.key];
        if (change === undefined && kept[f.key]) secrets[f.key] = kept[f.key];
        else if (change) secrets[f.key] = this.ctx.secrets.encrypt(change);
      }
      const row: Row = {
        ...before,
        name: base.name,
        driver: driver.id,
        from_address: base.fromAddress,
        from_name: base.fromName,
        settings: JSON.stringify(parsed.settings),
        secrets: JSON.stringify(secrets),
        updated_at: Date.now(),
      };
      this.clearFailing(row);
      this.refreshDerived(row);
      if (row.status === "ready") await releaseHeldMessages(trx, row.id);
      if (input.isDefault && before.is_default !== 1) {
        await trx.updateTable("email_servers").set({ is_default: null }).where("is_default", "=", 1).execute();
        row.is_default = 1;
      }
      await trx.updateTable("email_servers").set(row).where("id", "=", row.id).execute();
      await writeAudit(trx, actor, {
        action: "email_server.update",
        targetType: "email_server",
        targetId: row.id,
        before: this.auditView(before, []),
        after: this.auditView(row, Object.keys(parsed.secretChanges)),
      });
      return row;
    });
  }

  /** PATCH one setting. */
  async setSetting(idOrName: string, key: string, value: unknown, actor: Actor): Promise<EmailServerView> {
    return this.write(async (trx) => {
      const before = await this.getRow(idOrName, trx);
      const driver = this.driverOf(before);
      const f = this.editableField(driver, key);
      const row: Row = { ...before, updated_at: Date.now() };
      // Blank means "clear", as in a whole-settings PUT: a required setting becomes missing.
      const empty = isEmptySetting(value);
      if (f.secret) {
        if (!empty && (typeof value !== "string" || hasControlCharacters(value))) {
          throw fieldError("invalid_setting", [
            { field: `settings.${key}`, message: "must be a string without control characters" },
          ]);
        }
        const secrets = parseJson<SecretMap>(before.secrets);
        if (empty) delete secrets[key];
        else secrets[key] = this.ctx.secrets.encrypt(value as string);
        row.secrets = JSON.stringify(secrets);
      } else {
        const settings = parseJson<Settings>(before.settings);
        if (empty) this.resetSetting(settings, driver, key);
        else {
          const checked = checkValue(f, value);
          if ("problem" in checked) throw fieldError("invalid_setting", [{ field: `settings.${key}`, message: checked.problem }]);
          settings[key] = checked.value;
        }
        row.settings = JSON.stringify(settings);
      }
      return this.saveSettingChange(trx, actor, "email_server.setting.update", before, row, f.secret ? [key] : []);
    });
  }

  /** Clear: back to the default (or empty); a secret is forgotten. */
  async clearSetting(idOrName: string, key: string, actor: Actor): Promise<EmailServerView> {
    return this.write(async (trx) => {
      const before = await this.getRow(idOrName, trx);
      const driver = this.driverOf(before);
      const f = this.editableField(driver, key);
      const row: Row = { ...before, updated_at: Date.now() };
      if (f.secret) {
        const secrets = parseJson<SecretMap>(before.secrets);
        delete secrets[key];
        row.secrets = JSON.stringify(secrets);
      } else {
        const settings = parseJson<Settings>(before.settings);
        this.resetSetting(settings, driver, key);
        row.settings = JSON.stringify(settings);
      }
      return this.saveSettingChange(trx, actor, "email_server.setting.clear", before, row, f.secret ? [key] : []);
    });
  }

  async remove(idOrName: string, actor: Actor): Promise<void> {
    const removed = await this.write(async (trx) => {
      await this.lockDefault(trx);
      const row = await this.getRow(idOrName, trx);
      if (row.is_default === 1) {
        throw new MailroomError(
          "default_server_delete",
          `'${row.name}' is the default email server; make another server the default first.`,
        );
      }
      await trx.deleteFrom("email_servers").where("id", "=", row.id).execute();
      await writeAudit(trx, actor, {
        action: "email_server.delete",
        targetType: "email_server",
        targetId: row.id,
        before: this.auditView(row, []),
      });
      return row;
    });
    // After the commit: the delivery log stays, what the driver kept for the server goes.
    await findDriver(removed.driver)?.removeData?.({ dataDir: this.ctx.config.dataDir, serverId: removed.id });
  }

  /** Duplicates a server as a non-default one. Secrets are copied encrypted; OAuth grants never. */
  async copy(idOrName: string, actor: Actor): Promise<EmailServerView & { notice: string | null }> {
    const view = await this.write(async (trx) => {
      const source = await this.getRow(idOrName, trx);
      const row = freshRow({
        id: newId(),
        name: await this.copyName(trx, source.name),
        driver: source.driver,
        from_address: source.from_address,
        from_name: source.from_name,
        settings: source.settings,
        secrets: source.secrets,
      });
      this.refreshDerived(row);
      await trx.insertInto("email_servers").values(row).execute();
      await writeAudit(trx, actor, {
        action: "email_server.copy",
        targetType: "email_server",
        targetId: row.id,
        before: { copiedFrom: source.id, name: source.name },
        after: this.auditView(row, []),
      });
      return row;
    });
    const driver = findDriver(view.driver);
    const notice = driver?.oauthProvider
      ? "The OAuth authorization was not copied: the copy needs its own 'Authorize account'."
      : null;
    return { ...view, notice };
  }

  async makeDefault(idOrName: string, actor: Actor): Promise<EmailServerView> {
    return this.write(async (trx) => {
      await this.lockDefault(trx);
      const row = await this.getRow(idOrName, trx);
      if (row.is_default === 1) return row;
      const previous = await trx
        .selectFrom("email_servers")
        .select(["id", "name"])
        .where("is_default", "=", 1)
        .executeTakeFirst();
      await trx.updateTable("email_servers").set({ is_default: null }).where("is_default", "=", 1).execute();
      const updatedAt = Date.now();
      await trx.updateTable("email_servers").set({ is_default: 1, updated_at: updatedAt }).where("id", "=", row.id).execute();
      await writeAudit(trx, actor, {
        action: "email_server.default",
        targetType: "email_server",
        targetId: row.id,
        before: { default: previous ?? null },
        after: { default: { id: row.id, name: row.name } },
      });
      // The reply shows the row as stored, with its new updatedAt.
      return { ...row, is_default: 1, updated_at: updatedAt };
    });
  }

  /** Records (or clears, with null) a delivery problem that is the server's fault. */
  async setFault(serverId: string, fault: ServerFault | null, detail: string | null): Promise<void> {
    await this.write(async (trx) => {
      const row = await this.getRow(serverId, trx);
      const next: Row = { ...row, fault, fault_detail: detail, fault_at: fault ? Date.now() : null };
      this.refreshDerived(next);
      await trx
        .updateTable("email_servers")
        .set({ fault: next.fault, fault_detail: next.fault_detail, fault_at: next.fault_at, status: next.status })
        .where("id", "=", row.id)
        .execute();
      if (next.status === "ready") await releaseHeldMessages(trx, row.id);
      return next;
    });
  }

  /**
   * Records a new OAuth grant's facts (or forgets them, with null), in the caller's
   * transaction; src/oauth stores the tokens themselves. A new grant also ends
   * `reauthorization_required`.
   */
  async recordGrant(
    trx: Kysely<Database>,
    serverId: string,
    grant: { account: string; scopes: string; authorizedAt: number; expiresAt: number | null } | null,
  ): Promise<Row> {
    const row = await this.getRow(serverId, trx);
    const next: Row = {
      ...row,
      oauth_account: grant?.account ?? null,
      oauth_scopes: grant?.scopes ?? null,
      oauth_authorized_at: grant?.authorizedAt ?? null,
      oauth_expires_at: grant?.expiresAt ?? null,
      updated_at: Date.now(),
    };
    if (next.fault) {
      next.fault = null;
      next.fault_detail = null;
      next.fault_at = null;
    }
    this.refreshDerived(next);
    await trx.updateTable("email_servers").set(next).where("id", "=", row.id).execute();
    if (grant) await releaseHeldMessages(trx, row.id);
    return next;
  }

  // ---- helpers ----

  /**
   * Serializes the transactions that move or check the default (make default, create,
   * delete). Without it two concurrent "make default" calls on PostgreSQL each clear the
   * default they saw, then collide on the one-default index and answer 500; a delete could
   * also remove a server that just became the default. SQLite runs one writer at a time.
   */
  private async lockDefault(trx: Kysely<Database>): Promise<void> {
    if (this.ctx.storage.dialect === "postgres") await sql`select pg_advisory_xact_lock(${DEFAULT_SERVER_LOCK})`.execute(trx);
  }

  private async write(fn: (trx: Kysely<Database>) => Promise<Row>): Promise<EmailServerView> {
    try {
      const row = await this.db.transaction().execute(fn);
      return this.toView(row);
    } catch (error) {
      throw translateUniqueViolation(error);
    }
  }

  private async saveSettingChange(
    trx: Kysely<Database>,
    actor: Actor,
    action: string,
    before: Row,
    row: Row,
    changedSecrets: string[],
  ): Promise<Row> {
    this.clearFailing(row);
    this.refreshDerived(row);
    await trx.updateTable("email_servers").set(row).where("id", "=", row.id).execute();
    if (row.status === "ready") await releaseHeldMessages(trx, row.id);
    await writeAudit(trx, actor, {
      action,
      targetType: "email_server",
      targetId: row.id,
      before: this.auditView(before, []),
      after: this.auditView(row, changedSecrets),
    });
    return row;
  }

  private requireDriver(id: unknown): Driver {
    const driver = typeof id === "string" ? findDriver(id) : undefined;
    if (!driver) {
      throw new MailroomError("unknown_driver", `Unknown driver '${String(id)}': use one of ${driverIds.join(", ")}.`, {
        field: "driver",
        validDrivers: driverIds,
      });
    }
    return driver;
  }

  private driverOf(row: Row): Driver {
    return this.requireDriver(row.driver);
  }

  private editableField(driver: Driver, key: string) {
    const f = driver.fields.find((x) => x.key === key);
    if (!f) {
      throw new MailroomError(
        "unknown_setting",
        `The ${driver.label} driver has no setting '${key}'; its settings are ${driver.fields.map((x) => x.key).join(", ")}.`,
        { field: key, settings: driver.fields.map((x) => x.key) },
      );
    }
    if (f.readOnly) {
      throw new MailroomError("read_only_setting", `'${f.label}' is set by Mailroom and cannot be edited or cleared.`, {
        field: key,
      });
    }
    return f;
  }

  private resetSetting(settings: Settings, driver: Driver, key: string): void {
    const f = driver.fields.find((x) => x.key === key);
    const fallback = f ? defaultValue(f) : undefined;
    if (fallback === undefined) delete settings[key];
    else settings[key] = fallback;
  }

  private checkServerFields(input: EmailServerInput): { name: string; fromAddress: string; fromName: string } {
    const problems: FieldProblem[] = [];
    const name = typeof input.name === "string" ? input.name.trim() : "";
    if (typeof input.name !== "string" || name.length < 1 || name.length > NAME_MAX) {
      problems.push({ field: "name", message: `must be 1 to ${NAME_MAX} characters` });
    } else if (hasControlCharacters(input.name)) {
      // Checked before trimming: a trailing CR/LF is refused, not silently dropped.
      problems.push({ field: "name", message: "must not contain control characters such as CR or LF" });
    }
    const fromAddress = typeof input.fromAddress === "string" ? input.fromAddress.trim() : "";
    if (fromAddress !== "" && !isEmailAddress(fromAddress)) {
      problems.push({ field: "fromAddress", message: "must be an email address, e.g. noreply@example.com" });
    }
    const fromName = typeof input.fromName === "string" ? input.fromName.trim() : "";
    if (typeof input.fromName === "string" && hasControlCharacters(input.fromName)) {
      problems.push({ field: "fromName", message: "must not contain control characters such as CR or LF" });
    } else if (fromName.length > 200) {
      problems.push({ field: "fromName", message: "must be at most 200 characters" });
    }
    if (problems.length) {
      // A line break in a name is a header injection attempt: its own code, named first.
      const control = problems.filter((p) => p.message.includes("control characters"));
      if (control.length) throw fieldError("control_characters", [...control, ...problems.filter((p) => !control.includes(p))]);
      throw fieldError("validation_failed", problems);
    }
    return { name, fromAddress, fromName };
  }

  private async assertNameFree(db: Kysely<Database>, name: string, exceptId?: string): Promise<void> {
    let query = db.selectFrom("email_servers").select("name").where(sql`lower(name)`, "=", name.toLowerCase());
    if (exceptId) query = query.where("id", "!=", exceptId);
    const taken = await query.executeTakeFirst();
    if (taken) {
      // Names are unique regardless of case: say which server holds it, as it is spelled.
      throw new MailroomError("name_taken", `An email server named '${taken.name}' already exists; choose another name.`, {
        field: "name",
      });
    }
  }

  private async copyName(db: Kysely<Database>, name: string): Promise<string> {
    for (let n = 1; ; n++) {
      const suffix = n === 1 ? " (copy)" : ` (copy ${n})`;
      const candidate = name.slice(0, NAME_MAX - suffix.length) + suffix;
      const taken = await db
        .selectFrom("email_servers")
        .select("id")
        .where(sql`lower(name)`, "=", candidate.toLowerCase())
        .executeTakeFirst();
      if (!taken) return candidate;
    }
  }

  private missing(driver: Driver, row: Row, settings: Settings, secretKeys: string[]): string[] {
    const missing = missingSettings(driver, settings, secretKeys);
    return row.from_address === "" ? ["fromAddress", ...missing] : missing;
  }

  /** Recomputes status and search text from the row's own columns. */
  private refreshDerived(row: Row): void {
    const driver = this.driverOf(row);
    const settings = parseJson<Settings>(row.settings);
    const secretKeys = Object.keys(parseJson<SecretMap>(row.secrets));
    row.status = this.computeStatus(driver, row, this.missing(driver, row, settings, secretKeys));
    const words = [row.name, driver.id, driver.label, row.from_address, row.from_name];
    for (const f of driver.fields) {
      if (f.secret || f.readOnly || settings[f.key] === undefined) continue;
      words.push(f.label, String(settings[f.key]));
    }
    row.search_text = words.join("\n").toLowerCase();
  }

  private computeStatus(driver: Driver, row: Row, missing: string[]): ServerStatus {
    if (missing.length) return "incomplete";
    if (row.fault === "reauthorization_required") return "reauthorization_required";
    if (driver.oauthProvider && !row.oauth_account) return "not_authorized";
    if (row.fault === "failing") return "failing";
    return "ready";
  }

  private statusDetail(row: Row, missing: string[]): string | null {
    if (missing.length) return `Missing: ${missing.join(", ")}.`;
    if (row.fault) return row.fault_detail;
    if (row.status === "not_authorized") return "Authorize an account to send through this server.";
    if (row.oauth_account) return grantNotice(row);
    return null;
  }

  /** A configuration change is the admin's fix for a failing server: try it again. */
  private clearFailing(row: Row): void {
    if (row.fault === "failing") {
      row.fault = null;
      row.fault_detail = null;
      row.fault_at = null;
    }
  }

  /** What the audit log keeps: the server without secrets, each secret as changed/unchanged. */
  private auditView(row: Row, changedSecrets: string[]): Record<string, unknown> {
    const driver = findDriver(row.driver);
    const settings: Record<string, unknown> = { ...parseJson<Settings>(row.settings) };
    const secretKeys = Object.keys(parseJson<SecretMap>(row.secrets));
    for (const f of driver?.fields.filter((x) => x.secret) ?? []) {
      if (changedSecrets.includes(f.key)) settings[f.key] = SECRET_CHANGED;
      else if (secretKeys.includes(f.key)) settings[f.key] = SECRET_UNCHANGED;
    }
    return {
      name: row.name,
      driver: row.driver,
      fromAddress: row.from_address,
      fromName: row.from_name,
      isDefault: row.is_default === 1,
      settings,
    };
  }
}

/** A new row: not the default, no fault, no OAuth grant; status and search text to be derived. */
function freshRow(fields: Pick<Row, "id" | "name" | "driver" | "from_address" | "from_name" | "settings" | "secrets">): Row {
  const now = Date.now();
  return {
    ...fields,
    is_default: null,
    status: "incomplete",
    fault: null,
    fault_detail: null,
    fault_at: null,
    search_text: "",
    oauth_account: null,
    oauth_scopes: null,
    oauth_authorized_at: null,
    oauth_expires_at: null,
    created_at: now,
    updated_at: now,
  };
}

/**
 * Messages held because of the server's own fault go back to the queue once the server is
 * fixed (new settings, a new OAuth grant): none is lost, none needs a manual retry.
 */
export async function releaseHeldMessages(db: Kysely<Database>, serverId: string): Promise<void> {
  const now = Date.now();
  await db
    .updateTable("messages")
    .set({ status: "queued", next_attempt_at: now, updated_at: now })
    .where("server_id", "=", serverId)
    .where("status", "=", "held")
    .execute();
}

/** The error for a settings object with problems: a mistyped key is unknown_setting, as on PATCH. */
function settingsError(parsed: { problems: FieldProblem[]; unknownKeys: string[] }): MailroomError {
  if (!parsed.unknownKeys.length) return fieldError("invalid_setting", parsed.problems);
  const first = `settings.${parsed.unknownKeys[0]}`;
  return fieldError("unknown_setting", [
    ...parsed.problems.filter((p) => p.field === first),
    ...parsed.problems.filter((p) => p.field !== first),
  ]);
}

/** A race between two writers can still hit a unique index: answer it like the check would. */
export function translateUniqueViolation(error: unknown): unknown {
  const text = String((error as Error)?.message ?? "");
  if (/UNIQUE constraint failed: email_servers|email_servers_name/.test(text)) {
    return new MailroomError("name_taken", "An email server with that name already exists; choose another name.", {
      field: "name",
    });
  }
  return error;
}
