import { type Kysely, sql } from "kysely";
import { configuredDriver, findDriver } from "../drivers/registry.js";
import type { Driver } from "../drivers/types.js";
import { fieldError, MailroomError } from "../kernel/errors.js";
import { iso, newId } from "../kernel/ids.js";
import type { Settings, SettingValue } from "../kernel/settings.js";
import { isUniqueViolation } from "../storage/dialect.js";
import type { Database } from "../storage/schema.js";
import { type Actor, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";
import {
  auditView,
  checkServerFields,
  driverOf,
  type EmailServerInput,
  editableField,
  freshRow,
  missingOf,
  NAME_MAX,
  parseJson,
  type Row,
  refreshDerived,
  requireDriver,
  resetSetting,
  type SecretMap,
  type ServerStatus,
  secretDestinationChanged,
  settingsError,
  statusDetail,
} from "./email-server-rows.js";
import { listensTo, type MessageEventSink } from "./message-events.js";

export type { EmailServerInput, ServerStatus } from "./email-server-rows.js";

import {
  applies,
  changedDestinations,
  checkSecret,
  checkValue,
  combinedProblems,
  destinationProblems,
  isEmptySetting,
  missingSettings,
  type ParsedSettings,
  parseSettings,
} from "./settings.js";

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

/** What the audit entry of a change adds when the change dropped the server's OAuth grant. */
const GRANT_DROPPED = { oauthGrant: "dropped: the destination changed; authorize the account again" };

/** Advisory lock key for changes of the default server (any constant unique to this purpose). */
const DEFAULT_SERVER_LOCK = 0x6d72_6466;

export class EmailServerService {
  /** Hears that a server's OAuth grant was dropped, so cached tokens are forgotten (set by src/app.ts). */
  onGrantDropped?: (serverId: string) => void;
  /** Hears a fault recorded or cleared outside a caller's transaction (a grant lost): alerts look at once (src/app.ts). */
  onFaultChanged: (serverId: string) => void = () => {};
  /** Called after an edit of a failing server, so this process probes it at once (src/queue/prober.ts). */
  onProbeWanted: (serverId: string) => void = () => {};

  constructor(private readonly ctx: AppContext) {}

  /** A driver as this installation offers it (e.g. the operator's sendmail commands as options). */
  private driver(id: unknown): Driver {
    return configuredDriver(requireDriver(id), this.ctx.config.operator);
  }

  /** Parses settings as create, replace and draft do: values first, then where they point. */
  private parse(driver: Driver, input: Record<string, unknown>): ParsedSettings {
    const parsed = parseSettings(driver, input);
    if (parsed.problems.length) throw settingsError(parsed);
    this.checkCombined(driver, parsed.settings);
    this.checkDestinations(driver, parsed.settings);
    return parsed;
  }

  private checkCombined(driver: Driver, settings: Settings): void {
    const problems = combinedProblems(driver, settings);
    if (problems.length) throw fieldError("invalid_setting", problems);
  }

  private checkDestinations(driver: Driver, settings: Settings): void {
    const problems = destinationProblems(driver, settings, this.ctx.config.operator);
    if (problems.length) throw fieldError("endpoint_not_allowed", problems);
  }

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  // ---- reading ----

  /** `serverIds` (a token's server limit) keeps only those servers; null or absent: every server. */
  async list(
    options: { q?: string; limit?: number; offset?: number; serverIds?: readonly string[] | null } = {},
  ): Promise<{ items: EmailServerView[]; total: number }> {
    let query = this.db.selectFrom("email_servers");
    if (options.serverIds) {
      query = options.serverIds.length ? query.where("id", "in", options.serverIds) : query.where(sql<boolean>`1 = 0`);
    }
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
    const driver = driverOf(row);
    const stored = parseJson<Settings>(row.settings);
    const secretKeys = Object.keys(parseJson<SecretMap>(row.secrets));
    const derived: Record<string, string | null> = {
      ...(driver.derive?.({ publicUrl: this.ctx.config.publicUrl, settings: stored }) ?? {}),
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
    const missing = missingOf(driver, row, stored, secretKeys);
    return {
      id: row.id,
      name: row.name,
      driver: row.driver,
      fromAddress: row.from_address,
      fromName: row.from_name,
      isDefault: row.is_default === 1,
      status: row.status as ServerStatus,
      statusDetail: statusDetail(row, missing),
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
    const driver = this.driver(input.driver);
    checkServerFields(input);
    this.parse(driver, input.settings ?? {});
  }

  async create(input: EmailServerInput, actor: Actor): Promise<EmailServerView> {
    const driver = this.driver(input.driver);
    const base = checkServerFields(input);
    const parsed = this.parse(driver, input.settings ?? {});
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
    refreshDerived(row);
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
        after: auditView(row, Object.keys(secrets)),
      });
      return row;
    });
  }

  /**
   * An unsaved configuration, checked like a save, for testing before saving. Secrets left
   * out are borrowed from the saved server `basedOn` (the form being edited), as is its
   * grant, but only for the destination they were saved for: a draft that points elsewhere
   * must bring its own secrets, and gets no grant.
   */
  async draft(input: EmailServerInput, basedOn?: string): Promise<{ row: Row; secrets: Record<string, string> }> {
    const driver = this.driver(input.driver);
    const base = checkServerFields({ ...input, name: input.name || "Draft" });
    const parsed = this.parse(driver, input.settings ?? {});
    const found = basedOn ? await this.getRow(basedOn) : undefined;
    const saved = found && found.driver === driver.id ? found : undefined;
    const moved = saved ? changedDestinations(driver, parseJson<Settings>(saved.settings), parsed.settings) : [];
    const secrets: Record<string, string> = saved ? this.secretsOf(saved) : {};
    for (const f of driver.fields.filter((x) => x.secret && !applies(driver, x, parsed.settings))) delete secrets[f.key];
    const borrowed = Object.keys(secrets).filter((key) => parsed.secretChanges[key] === undefined);
    if (moved.length && borrowed.length) throw secretDestinationChanged(driver, moved, borrowed);
    const grant = saved && !moved.length ? saved : undefined;
    for (const [key, value] of Object.entries(parsed.secretChanges)) {
      if (value === null) delete secrets[key];
      else secrets[key] = value;
    }
    // A test needs what sending needs: name the missing fields rather than try to connect to nowhere.
    const missing = missingSettings(driver, parsed.settings, Object.keys(secrets));
    if (missing.length) {
      throw fieldError(
        "validation_failed",
        missing.map((key) => ({ field: `settings.${key}`, message: "is required to test the server; fill it in first" })),
      );
    }
    const row: Row = {
      ...freshRow({
        id: found?.id ?? "draft",
        name: base.name,
        driver: driver.id,
        from_address: base.fromAddress,
        from_name: base.fromName,
        settings: JSON.stringify(parsed.settings),
        secrets: "{}",
      }),
      // The saved server's grant: a draft of it tests with its authorized account.
      oauth_account: grant?.oauth_account ?? null,
      oauth_scopes: grant?.oauth_scopes ?? null,
      oauth_authorized_at: grant?.oauth_authorized_at ?? null,
      oauth_expires_at: grant?.oauth_expires_at ?? null,
    };
    return { row, secrets };
  }

  /** PUT: replaces the whole configuration at once. Omitted secrets keep their value. */
  async replace(idOrName: string, input: EmailServerInput, actor: Actor): Promise<EmailServerView> {
    const driver = this.driver(input.driver);
    const base = checkServerFields(input);
    const parsed = this.parse(driver, input.settings ?? {});
    return this.edit(async (trx) => {
      if (input.isDefault) await this.lockDefault(trx);
      const before = await this.getRow(idOrName, trx);
      if (base.name.toLowerCase() !== before.name.toLowerCase()) await this.assertNameFree(trx, base.name, before.id);
      // Secrets of the old driver mean nothing to a new one.
      const sameDriver = before.driver === driver.id;
      const kept = sameDriver ? parseJson<SecretMap>(before.secrets) : {};
      const moved = sameDriver ? changedDestinations(driver, parseJson<Settings>(before.settings), parsed.settings) : [];
      // A secret of another authentication method is forgotten, not carried along.
      const applying = driver.fields.filter((x) => x.secret && applies(driver, x, parsed.settings));
      const keptAsIs = applying.map((f) => f.key).filter((key) => kept[key] && parsed.secretChanges[key] === undefined);
      if (moved.length && keptAsIs.length) throw secretDestinationChanged(driver, moved, keptAsIs);
      const secrets: SecretMap = {};
      for (const f of applying) {
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
      const grantDropped = moved.length > 0 && (await this.dropGrant(trx, row));
      refreshDerived(row);
      await this.afterEdit(trx, row);
      if (input.isDefault && before.is_default !== 1) {
        await trx.updateTable("email_servers").set({ is_default: null }).where("is_default", "=", 1).execute();
        row.is_default = 1;
      }
      await trx.updateTable("email_servers").set(row).where("id", "=", row.id).execute();
      await writeAudit(trx, actor, {
        action: "email_server.update",
        targetType: "email_server",
        targetId: row.id,
        before: auditView(before, []),
        after: { ...auditView(row, Object.keys(parsed.secretChanges)), ...(grantDropped ? GRANT_DROPPED : {}) },
      });
      return row;
    });
  }

  /** PATCH one setting. */
  async setSetting(idOrName: string, key: string, value: unknown, actor: Actor): Promise<EmailServerView> {
    return this.edit(async (trx) => {
      const before = await this.getRow(idOrName, trx);
      const driver = this.driver(before.driver);
      const f = editableField(driver, key);
      const row: Row = { ...before, updated_at: Date.now() };
      // Blank means "clear", as in a whole-settings PUT: a required setting becomes missing.
      const empty = isEmptySetting(value);
      if (f.secret) {
        const checked = empty ? null : checkSecret(f, value);
        if (checked && "problem" in checked) {
          throw fieldError("invalid_setting", [{ field: `settings.${key}`, message: checked.problem }]);
        }
        const secrets = parseJson<SecretMap>(before.secrets);
        if (!checked) delete secrets[key];
        else secrets[key] = this.ctx.secrets.encrypt(checked.value);
        row.secrets = JSON.stringify(secrets);
      } else {
        const settings = parseJson<Settings>(before.settings);
        if (empty) resetSetting(settings, driver, key);
        else {
          const checked = checkValue(f, value);
          if ("problem" in checked) throw fieldError("invalid_setting", [{ field: `settings.${key}`, message: checked.problem }]);
          settings[key] = checked.value;
        }
        this.checkCombined(driver, settings);
        this.checkDestinations(driver, settings);
        row.settings = JSON.stringify(settings);
      }
      return this.saveSettingChange(trx, actor, "email_server.setting.update", before, row, f.secret ? [key] : []);
    });
  }

  /** Clear: back to the default (or empty); a secret is forgotten. */
  async clearSetting(idOrName: string, key: string, actor: Actor): Promise<EmailServerView> {
    return this.edit(async (trx) => {
      const before = await this.getRow(idOrName, trx);
      const driver = this.driver(before.driver);
      const f = editableField(driver, key);
      const row: Row = { ...before, updated_at: Date.now() };
      if (f.secret) {
        const secrets = parseJson<SecretMap>(before.secrets);
        delete secrets[key];
        row.secrets = JSON.stringify(secrets);
      } else {
        const settings = parseJson<Settings>(before.settings);
        resetSetting(settings, driver, key);
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
      await failOrphanedMessages(trx, row, this.ctx.messageEvents);
      await writeAudit(trx, actor, {
        action: "email_server.delete",
        targetType: "email_server",
        targetId: row.id,
        before: auditView(row, []),
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
      refreshDerived(row);
      await trx.insertInto("email_servers").values(row).execute();
      await writeAudit(trx, actor, {
        action: "email_server.copy",
        targetType: "email_server",
        targetId: row.id,
        before: { copiedFrom: source.id, name: source.name },
        after: auditView(row, []),
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

  /**
   * Records (or clears, with null) a delivery problem that is the server's fault, in the
   * caller's transaction if given. A failing server's queued mail is held (not attempted);
   * a server ready again releases its held mail. A revoked grant (`reauthorization_required`)
   * is the more precise fault and ends only with a new authorization (recordGrant): a login
   * refused on a connection racing the refresh that found it out must not turn it back into
   * `failing`, nor a success of that race clear it.
   */
  async setFault(serverId: string, fault: ServerFault | null, detail: string | null, db?: Kysely<Database>): Promise<void> {
    const apply = async (trx: Kysely<Database>) => {
      const row = await this.getRow(serverId, trx);
      if (row.fault === "reauthorization_required" && fault !== "reauthorization_required") return row;
      const next: Row = { ...row, fault, fault_detail: detail, fault_at: fault ? Date.now() : null };
      refreshDerived(next);
      await trx
        .updateTable("email_servers")
        .set({ fault: next.fault, fault_detail: next.fault_detail, fault_at: next.fault_at, status: next.status })
        .where("id", "=", row.id)
        .execute();
      if (fault === "failing") await holdQueuedMessages(trx, row.id, this.ctx.messageEvents);
      if (next.status === "ready") await releaseHeldMessages(trx, row.id);
      return next;
    };
    if (db) await apply(db);
    else {
      await this.write(apply);
      this.onFaultChanged(serverId);
    }
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
    refreshDerived(next);
    await trx.updateTable("email_servers").set(next).where("id", "=", row.id).execute();
    if (grant) await releaseHeldMessages(trx, row.id);
    return next;
  }

  // ---- helpers ----

  /**
   * An edit is the admin's fix for a failing server: it stays failing (its mail held) until
   * a probe of the new settings passes, and that probe is due at once.
   */
  private async afterEdit(trx: Kysely<Database>, row: Row): Promise<void> {
    if (row.fault === "failing") await requestProbe(trx, row.id);
    else if (row.status === "ready") await releaseHeldMessages(trx, row.id);
  }

  /**
   * A write that edits a server's configuration. Once committed, a failing server is probed,
   * and a grant the edit dropped must not live on in a token cache (forgetting the tokens of
   * a server that has none is harmless).
   */
  private async edit(fn: (trx: Kysely<Database>) => Promise<Row>): Promise<EmailServerView> {
    const view = await this.write(fn);
    if (view.settings.authorizedAccount == null) this.onGrantDropped?.(view.id);
    if (view.status === "failing") this.onProbeWanted(view.id);
    return view;
  }

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
    // One setting at a time: a secret cannot come with it, so a moved destination needs
    // the secrets cleared (or the whole configuration replaced with them) first.
    const driver = driverOf(row);
    const moved = changedDestinations(driver, parseJson<Settings>(before.settings), parseJson<Settings>(row.settings));
    const stored = Object.keys(parseJson<SecretMap>(row.secrets));
    if (moved.length && stored.length) throw secretDestinationChanged(driver, moved, stored);
    const grantDropped = moved.length > 0 && (await this.dropGrant(trx, row));
    refreshDerived(row);
    await trx.updateTable("email_servers").set(row).where("id", "=", row.id).execute();
    await this.afterEdit(trx, row);
    await writeAudit(trx, actor, {
      action,
      targetType: "email_server",
      targetId: row.id,
      before: auditView(before, []),
      after: { ...auditView(row, changedSecrets), ...(grantDropped ? GRANT_DROPPED : {}) },
    });
    return row;
  }

  /**
   * Forgets a server's OAuth grant in the caller's transaction (its destination changed: a
   * token granted for one client, tenant or host is never sent to another). True if it had one.
   */
  private async dropGrant(trx: Kysely<Database>, row: Row): Promise<boolean> {
    // An app-only token (no grant on the row) and an authorization under way were for the old destination too.
    await trx.deleteFrom("oauth_tokens").where("server_id", "=", row.id).execute();
    await trx.deleteFrom("oauth_authorizations").where("server_id", "=", row.id).where("used_at", "is", null).execute();
    if (!row.oauth_account) return false;
    row.oauth_account = null;
    row.oauth_scopes = null;
    row.oauth_authorized_at = null;
    row.oauth_expires_at = null;
    if (row.fault === "reauthorization_required") {
      row.fault = null;
      row.fault_detail = null;
      row.fault_at = null;
    }
    return true;
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
}

/**
 * Messages held because of the server's own fault go back to the queue once the server is
 * fixed (a passing probe, new settings, a new OAuth grant) with a fresh set of attempts:
 * the ones spent while the server was broken were not the message's fault.
 */
export async function releaseHeldMessages(db: Kysely<Database>, serverId: string): Promise<void> {
  const now = Date.now();
  await db
    .updateTable("messages")
    .set({ status: "queued", attempts: 0, next_attempt_at: now, updated_at: now })
    // A routed message held for want of any server goes when one of its route's recovers.
    .where((eb) => eb.or([eb("server_id", "=", serverId), eb("route_servers", "like", `%"${serverId}"%`)]))
    .where("status", "=", "held")
    .execute();
}

/** Asks for a probe of a failing server at once: a NULL next_probe_at is due now (src/queue/breaker.ts). */
export async function requestProbe(db: Kysely<Database>, serverId: string, now = Date.now()): Promise<void> {
  await db
    .updateTable("server_breakers")
    .set({ next_probe_at: null, probes: 0, updated_at: now })
    .where("server_id", "=", serverId)
    .execute();
}

/**
 * A failing server's queued mail waits, unattempted, until a probe passes. Routed mail stays
 * queued: the worker hands it to the next server of its route (and holds it if none can).
 */
async function holdQueuedMessages(db: Kysely<Database>, serverId: string, events: MessageEventSink): Promise<void> {
  const now = Date.now();
  const hold = db
    .updateTable("messages")
    .set({ status: "held", updated_at: now })
    .where("server_id", "=", serverId)
    .where("status", "=", "queued")
    .where("route_servers", "is", null);
  if (!listensTo(events, "held")) {
    await hold.execute();
    return;
  }
  const held = await hold.returning("id").execute();
  if (held.length)
    await events.record(
      db,
      held.map((m) => ({ type: "held", messageId: m.id, serverId, at: now })),
    );
}

/** Mail waiting for a deleted server can never go: it fails, and the log says why. */
async function failOrphanedMessages(db: Kysely<Database>, row: Row, events: MessageEventSink): Promise<void> {
  const now = Date.now();
  const fail = db
    .updateTable("messages")
    .set({
      status: "failed",
      last_error_code: "email_server_not_found",
      last_error: `The email server '${row.name}' was deleted.`,
      lease_owner: null,
      updated_at: now,
    })
    .where("server_id", "=", row.id)
    .where((eb) =>
      eb.or([
        eb("status", "in", ["queued", "held"]),
        // A claim whose worker died; one still being sent settles by itself.
        eb.and([eb("status", "=", "sending"), eb("next_attempt_at", "<=", now)]),
      ]),
    );
  if (!listensTo(events, "failed")) {
    await fail.execute();
    return;
  }
  const failed = await fail.returning("id").execute();
  if (failed.length)
    await events.record(
      db,
      failed.map((m) => ({ type: "failed", messageId: m.id, serverId: row.id, at: now })),
    );
}

/** A race between two writers can still hit a unique index: answer it like the check would. */
function translateUniqueViolation(error: unknown): unknown {
  if (isUniqueViolation(error, "email_servers_name")) {
    return new MailroomError("name_taken", "An email server with that name already exists; choose another name.", {
      field: "name",
    });
  }
  return error;
}
