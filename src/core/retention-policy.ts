import { MAX_RETENTION_DAYS, type RetentionPeriods, retentionConflict } from "../config.js";
import { type FieldProblem, MailroomError } from "../kernel/errors.js";
import { iso } from "../kernel/ids.js";
import { type Actor, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";

const SETTING_KEY = "retention";
const FIELDS = ["bodyDays", "metadataDays", "auditDays"] as const;

export interface RetentionPolicyView {
  /** What purges use: the UI's settings when an admin saved some, otherwise the environment's. */
  effective: RetentionPeriods;
  source: "environment" | "settings";
  /** MAILROOM_RETENTION_*_DAYS, what "Use the environment's" goes back to. */
  environment: RetentionPeriods;
  /** The saved settings, or null. */
  override: (RetentionPeriods & { updatedAt: string; updatedBy: string }) | null;
}

/** Checks periods sent by an admin: each whole days from 1 to 36500, or null for "kept". */
export function checkPeriods(input: Record<string, unknown>): RetentionPeriods {
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(input)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw new MailroomError("unknown_field", `${key}: is not a field this route accepts; remove it`, [
        { field: key, message: "is not a field this route accepts; remove it" },
      ]);
    }
  }
  for (const field of FIELDS) {
    const value = input[field];
    if (value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_RETENTION_DAYS) {
      problems.push({ field, message: `must be whole days from 1 to ${MAX_RETENTION_DAYS}, or null to keep for ever` });
    }
  }
  if (problems.length) throw new MailroomError("validation_failed", `${problems[0].field}: ${problems[0].message}`, problems);
  const periods = Object.fromEntries(FIELDS.map((f) => [f, input[f]])) as unknown as RetentionPeriods;
  const conflict = retentionConflict(periods);
  if (conflict) {
    throw new MailroomError("validation_failed", `bodyDays: ${conflict}; use at most ${periods.metadataDays}.`, [
      { field: "bodyDays", message: `must be at most metadataDays (${periods.metadataDays})` },
    ]);
  }
  return periods;
}

/** The retention periods: the environment's, overridden by what an admin saved in the UI. */
export class RetentionPolicy {
  constructor(private readonly ctx: AppContext) {}

  async read(): Promise<RetentionPolicyView> {
    const { bodyDays, metadataDays, auditDays } = this.ctx.config.retention;
    const environment = { bodyDays, metadataDays, auditDays };
    const row = await this.ctx.db.selectFrom("app_settings").selectAll().where("key", "=", SETTING_KEY).executeTakeFirst();
    if (!row) return { effective: environment, source: "environment", environment, override: null };
    const saved = JSON.parse(row.value) as RetentionPeriods;
    return {
      effective: saved,
      source: "settings",
      environment,
      override: { ...saved, updatedAt: iso(Number(row.updated_at)) as string, updatedBy: row.updated_by },
    };
  }

  /** Saves periods that override the environment (checked here, whoever calls), audited. */
  async update(input: Record<string, unknown>, actor: Actor, now = Date.now()): Promise<RetentionPolicyView> {
    const periods = checkPeriods(input);
    const before = (await this.read()).effective;
    await this.ctx.db.transaction().execute(async (trx) => {
      const value = JSON.stringify(periods);
      await trx
        .insertInto("app_settings")
        .values({ key: SETTING_KEY, value, updated_at: now, updated_by: actor.label })
        .onConflict((oc) => oc.column("key").doUpdateSet({ value, updated_at: now, updated_by: actor.label }))
        .execute();
      await writeAudit(
        trx,
        actor,
        { action: "settings.retention.update", targetType: "settings", targetId: SETTING_KEY, before, after: periods },
        now,
      );
    });
    return this.read();
  }

  /** Forgets the saved periods: the environment's apply again. */
  async reset(actor: Actor, now = Date.now()): Promise<RetentionPolicyView> {
    const current = await this.read();
    if (current.override) {
      await this.ctx.db.transaction().execute(async (trx) => {
        await trx.deleteFrom("app_settings").where("key", "=", SETTING_KEY).execute();
        await writeAudit(
          trx,
          actor,
          {
            action: "settings.retention.reset",
            targetType: "settings",
            targetId: SETTING_KEY,
            before: current.effective,
            after: current.environment,
          },
          now,
        );
      });
    }
    return this.read();
  }
}
