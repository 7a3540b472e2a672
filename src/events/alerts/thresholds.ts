/**
 * When an alert fires: thresholds with defaults, which an admin may override in the UI
 * (saved in app_settings under "alerts", like the retention periods). null turns a check off.
 */
import { type Actor, writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import { type FieldProblem, MailroomError } from "../../kernel/errors.js";
import { iso } from "../../kernel/ids.js";

export interface AlertThresholds {
  /** Held messages (all servers) at or above this count open an incident. */
  heldMessages: number | null;
  /** The oldest queued message waiting this many minutes or more. */
  queueAgeMinutes: number | null;
  /** Failed messages as a percentage of those finished (sent or failed) within the window. */
  failureRatePercent: number | null;
  failureRateWindowMinutes: number;
  /** Fewer finished messages than this in the window say nothing about a rate. */
  failureRateMinMessages: number;
  /** Microsoft refresh tokens end after 90 days unused: warn this many days before. */
  microsoftIdleWarnDays: number | null;
  /** Google apps in "Testing" lose their grant 7 days after consent: warn this many days before. */
  googleTestingWarnDays: number | null;
  /** Days before a client secret's end date to warn, each once (e.g. 30, then 7). */
  clientSecretWarnDays: number[];
}

export const DEFAULT_THRESHOLDS: AlertThresholds = {
  heldMessages: 100,
  queueAgeMinutes: 30,
  failureRatePercent: 20,
  failureRateWindowMinutes: 60,
  failureRateMinMessages: 20,
  microsoftIdleWarnDays: 14,
  googleTestingWarnDays: 2,
  clientSecretWarnDays: [30, 7],
};

const SETTING_KEY = "alerts";

/** Each field: whether null (off) is allowed, and its range. */
const RULES: Record<
  Exclude<keyof AlertThresholds, "clientSecretWarnDays">,
  { min: number; max: number; off: boolean; unit: string }
> = {
  heldMessages: { min: 1, max: 10_000_000, off: true, unit: "messages" },
  queueAgeMinutes: { min: 1, max: 100_000, off: true, unit: "minutes" },
  failureRatePercent: { min: 1, max: 100, off: true, unit: "percent" },
  failureRateWindowMinutes: { min: 5, max: 10_080, off: false, unit: "minutes" },
  failureRateMinMessages: { min: 1, max: 1_000_000, off: false, unit: "messages" },
  microsoftIdleWarnDays: { min: 1, max: 89, off: true, unit: "days" },
  googleTestingWarnDays: { min: 1, max: 6, off: true, unit: "days" },
};
const FIELDS = [...Object.keys(RULES), "clientSecretWarnDays"] as (keyof AlertThresholds)[];

/** Checks thresholds sent by an admin: every field, whole numbers in range (null turns a check off). */
export function checkThresholds(input: Record<string, unknown>): AlertThresholds {
  for (const key of Object.keys(input)) {
    if (!(FIELDS as string[]).includes(key)) {
      throw new MailroomError("unknown_field", `${key}: is not a field this route accepts; remove it`, [
        { field: key, message: "is not a field this route accepts; remove it" },
      ]);
    }
  }
  const problems: FieldProblem[] = [];
  const out: Record<string, unknown> = {};
  for (const [field, rule] of Object.entries(RULES)) {
    const value = input[field];
    if (value === null && rule.off) {
      out[field] = null;
      continue;
    }
    if (typeof value !== "number" || !Number.isInteger(value) || value < rule.min || value > rule.max) {
      const off = rule.off ? ", or null to turn this check off" : "";
      problems.push({ field, message: `must be whole ${rule.unit} from ${rule.min} to ${rule.max}${off}` });
      continue;
    }
    out[field] = value;
  }
  const stages = input.clientSecretWarnDays;
  if (
    !Array.isArray(stages) ||
    stages.length > 3 ||
    stages.some((d) => typeof d !== "number" || !Number.isInteger(d) || d < 1 || d > 365) ||
    new Set(stages).size !== stages.length
  ) {
    problems.push({
      field: "clientSecretWarnDays",
      message: "must be a list of up to 3 different whole days from 1 to 365, e.g. [30, 7]; [] turns these warnings off",
    });
  } else {
    out.clientSecretWarnDays = [...(stages as number[])].sort((a, b) => b - a);
  }
  if (problems.length) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more in details)` : "";
    throw new MailroomError("validation_failed", `${problems[0].field}: ${problems[0].message}${more}`, problems);
  }
  return out as unknown as AlertThresholds;
}

export interface AlertSettingsView {
  thresholds: AlertThresholds;
  defaults: AlertThresholds;
  /** null while the defaults apply. */
  updatedAt: string | null;
  updatedBy: string | null;
}

export class AlertSettings {
  constructor(private readonly ctx: AppContext) {}

  async read(): Promise<AlertSettingsView> {
    const row = await this.ctx.db.selectFrom("app_settings").selectAll().where("key", "=", SETTING_KEY).executeTakeFirst();
    // A saved value from a version with fewer fields: the new ones take their defaults.
    const saved = row ? (JSON.parse(row.value) as Partial<AlertThresholds>) : {};
    return {
      thresholds: { ...DEFAULT_THRESHOLDS, ...saved },
      defaults: DEFAULT_THRESHOLDS,
      updatedAt: row ? iso(Number(row.updated_at)) : null,
      updatedBy: row?.updated_by ?? null,
    };
  }

  async thresholds(): Promise<AlertThresholds> {
    return (await this.read()).thresholds;
  }

  /** Saves thresholds (checked here, whoever calls), audited with what they were. */
  async update(input: Record<string, unknown>, actor: Actor): Promise<AlertSettingsView> {
    const thresholds = checkThresholds(input);
    const before = (await this.read()).thresholds;
    const now = this.ctx.clock();
    await this.ctx.db.transaction().execute(async (trx) => {
      const value = JSON.stringify(thresholds);
      await trx
        .insertInto("app_settings")
        .values({ key: SETTING_KEY, value, updated_at: now, updated_by: actor.label })
        .onConflict((oc) => oc.column("key").doUpdateSet({ value, updated_at: now, updated_by: actor.label }))
        .execute();
      await writeAudit(
        trx,
        actor,
        { action: "settings.alerts.update", targetType: "settings", targetId: SETTING_KEY, before, after: thresholds },
        now,
      );
    });
    return this.read();
  }
}
