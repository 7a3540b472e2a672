import fs from "node:fs";
import YAML from "yaml";
import type { Mailroom } from "../app.js";
import { cliActor } from "../core/audit.js";
import type { EmailServerInput, EmailServerView } from "../core/email-servers.js";
import type { RouteInput } from "../core/routes.js";
import { parseSettings } from "../core/settings.js";
import { findDriver } from "../drivers/registry.js";
import { MailroomError } from "../kernel/errors.js";

/** The file `servers export` writes and `servers import` reads. */
interface ExportFile {
  version: 1;
  servers: ExportedServer[];
  /** Route rules in order (first match wins), servers by name; absent in files from before routing. */
  routes?: RouteInput[];
}

interface ExportedServer {
  name: string;
  driver: string;
  fromAddress: string;
  fromName: string;
  isDefault: boolean;
  settings: Record<string, unknown>;
}

const PLACEHOLDER = /^\$\{([A-Z][A-Z0-9_]*)\}$/;

/** MAILROOM_SECRET_<SERVER>_<SETTING>, e.g. MAILROOM_SECRET_MAIN_SMTP_PASSWORD. */
export function secretEnvName(serverName: string, key: string): string {
  const part = (s: string) =>
    s
      .replace(/([a-z])([A-Z])/g, "$1_$2")
      .replace(/[^A-Za-z0-9]+/g, "_")
      .replace(/^_|_$/g, "")
      .toUpperCase();
  return `MAILROOM_SECRET_${part(serverName)}_${part(key)}`;
}

/**
 * `used` keeps the variable names already given in this file: "Main SMTP" and "main-smtp"
 * would otherwise share one variable, and an import would give both the same secret.
 */
function exportServer(view: EmailServerView, used: Set<string> = new Set()): ExportedServer {
  const driver = findDriver(view.driver);
  const settings: Record<string, unknown> = {};
  for (const f of driver?.fields ?? []) {
    const value = view.settings[f.key];
    if (f.readOnly) continue;
    if (f.secret) {
      // The value never leaves: the file names the variable that will hold it on import.
      if ((value as { set: boolean }).set) {
        const base = secretEnvName(view.name, f.key);
        let name = base;
        for (let n = 2; used.has(name); n++) name = `${base}_${n}`;
        used.add(name);
        settings[f.key] = `\${${name}}`;
      }
    } else if (value !== null) {
      settings[f.key] = value;
    }
  }
  return {
    name: view.name,
    driver: view.driver,
    fromAddress: view.fromAddress,
    fromName: view.fromName,
    isDefault: view.isDefault,
    settings,
  };
}

export async function exportServers(mailroom: Mailroom): Promise<ExportFile> {
  const { items } = await mailroom.servers.list({ limit: 10_000 });
  const used = new Set<string>();
  return { version: 1, servers: items.map((view) => exportServer(view, used)), routes: await mailroom.routes.exportAll() };
}

export interface ImportStep {
  name: string;
  action: "create" | "update" | "unchanged";
  changes: string[];
  /** A server's step has `input`, a route rule's `route`. */
  input?: EmailServerInput;
  route?: RouteInput;
  warnings: string[];
}

/**
 * Works out what an import would do, checking every server before anything is written.
 * Secrets come from the environment variables the placeholders name; an unset variable
 * keeps the stored secret (or leaves a new server's secret empty, with a warning).
 */
export async function planImport(mailroom: Mailroom, text: string, env: NodeJS.ProcessEnv): Promise<ImportStep[]> {
  let file: ExportFile;
  try {
    file = YAML.parse(text) as ExportFile;
  } catch (error) {
    // YAML's message goes on with a picture of the line; its first line says what and where.
    const reason = (error as Error).message.split("\n")[0];
    throw new MailroomError("validation_failed", `The file is neither YAML nor JSON: ${reason}`);
  }
  if (file?.version !== 1 || !Array.isArray(file.servers)) {
    throw new MailroomError("validation_failed", "The file needs 'version: 1' and a 'servers' list, as 'servers export' writes.");
  }
  const steps: ImportStep[] = [];
  const seen = new Map<string, string>();
  for (const [index, server] of file.servers.entries()) {
    // JSON quoting: a name with a line break must not break the one-line error.
    const where = `servers[${index}]${server?.name ? ` (${JSON.stringify(String(server.name))})` : ""}`;
    const driver = findDriver(server?.driver);
    if (!driver) throw new MailroomError("unknown_driver", `${where}: unknown driver '${server?.driver}'.`);
    const warnings: string[] = [];
    const settings: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(server.settings ?? {})) {
      const match = typeof value === "string" ? PLACEHOLDER.exec(value) : null;
      if (!match) settings[key] = value;
      else if (env[match[1]] !== undefined) settings[key] = env[match[1]];
      else warnings.push(`${key}: ${match[1]} is not set, so the stored secret (if any) is kept`);
    }
    const parsed = parseSettings(driver, settings);
    if (parsed.problems.length) {
      throw new MailroomError(
        "invalid_setting",
        `${where}: ${parsed.problems[0].field} ${parsed.problems[0].message}.`,
        parsed.problems,
      );
    }
    const input: EmailServerInput = {
      name: server.name,
      driver: server.driver,
      fromAddress: server.fromAddress ?? "",
      fromName: server.fromName ?? "",
      settings,
      isDefault: server.isDefault === true,
    };
    // Everything create or replace would refuse is refused now, before anything is written.
    try {
      mailroom.servers.checkInput(input);
    } catch (error) {
      if (error instanceof MailroomError) throw new MailroomError(error.code, `${where}: ${error.message}`, error.details);
      throw error;
    }
    const sameName = seen.get(input.name.trim().toLowerCase());
    if (sameName) {
      throw new MailroomError("name_taken", `${where}: ${sameName} has the same name; names are unique regardless of case.`, {
        field: "name",
      });
    }
    seen.set(input.name.trim().toLowerCase(), `servers[${index}]`);
    const existing = await mailroom.servers.findRow(input.name.trim());
    if (!existing) {
      steps.push({ name: input.name.trim(), action: "create", changes: ["new server"], input, warnings });
      continue;
    }
    const current = exportServer(mailroom.servers.toView(existing));
    const changes: string[] = [];
    for (const key of ["driver", "fromAddress", "fromName"] as const) {
      if (current[key] !== input[key]) changes.push(`${key}: ${JSON.stringify(current[key])} → ${JSON.stringify(input[key])}`);
    }
    if (input.isDefault && !current.isDefault) changes.push("becomes the default");
    for (const f of driver.fields) {
      if (f.readOnly) continue;
      if (f.secret) {
        if (parsed.secretChanges[f.key] !== undefined) changes.push(`${f.key}: [secret from the environment]`);
        continue;
      }
      const before = JSON.stringify(current.settings[f.key] ?? null);
      const after = JSON.stringify(parsed.settings[f.key] ?? null);
      if (before !== after) changes.push(`${f.key}: ${before} → ${after}`);
    }
    steps.push({ name: input.name.trim(), action: changes.length ? "update" : "unchanged", changes, input, warnings });
  }
  return [...steps, ...(await planRoutes(mailroom, file.routes ?? [], new Set(seen.keys())))];
}

/**
 * The route rules of the file, in its order: each names servers of the file or of this
 * installation (checked here; the rest of a rule's checks run as it is written).
 */
async function planRoutes(mailroom: Mailroom, routes: RouteInput[], fileServers: Set<string>): Promise<ImportStep[]> {
  if (!Array.isArray(routes))
    throw new MailroomError("validation_failed", "'routes' must be a list, as 'servers export' writes.");
  const existing = new Map((await mailroom.routes.list()).items.map((r) => [r.name, r]));
  const known = new Set([
    ...fileServers,
    ...(await mailroom.servers.list({ limit: 10_000 })).items.map((s) => s.name.toLowerCase()),
  ]);
  const steps: ImportStep[] = [];
  for (const [index, route] of routes.entries()) {
    const where = `routes[${index}]${route?.name ? ` (${JSON.stringify(String(route.name))})` : ""}`;
    if (typeof route?.name !== "string" || !route.name.trim() || !Array.isArray(route.servers) || route.servers.length === 0) {
      throw new MailroomError("validation_failed", `${where}: a route needs a name and a list of servers.`);
    }
    const unknown = route.servers.find((s) => !known.has(String(s).toLowerCase()));
    if (unknown !== undefined) {
      throw new MailroomError("email_server_not_found", `${where}: no server named '${unknown}' in the file or here.`);
    }
    const input: RouteInput = { name: route.name.trim(), match: route.match ?? {}, servers: route.servers, position: index + 1 };
    const current = existing.get(input.name);
    if (!current) {
      steps.push({ name: input.name, action: "create", changes: ["new route"], route: input, warnings: [] });
      continue;
    }
    const before = JSON.stringify({
      match: current.match,
      servers: current.servers.map((s) => s.name),
      position: current.position,
    });
    const after = JSON.stringify({
      match: { from: null, token: null, tag: null, recipientDomain: null, ...input.match },
      servers: input.servers,
      position: input.position,
    });
    const changed = before !== after;
    steps.push({
      name: input.name,
      action: changed ? "update" : "unchanged",
      changes: changed ? [`${before} → ${after}`] : [],
      route: input,
      warnings: [],
    });
  }
  return steps;
}

export async function applyImport(mailroom: Mailroom, steps: ImportStep[]): Promise<void> {
  // Servers first: the routes name them.
  for (const step of steps) {
    if (!step.input) continue;
    if (step.action === "create") await mailroom.servers.create(step.input, cliActor);
    if (step.action === "update") await mailroom.servers.replace(step.name, step.input, cliActor);
  }
  for (const step of steps) {
    if (!step.route) continue;
    if (step.action === "create") await mailroom.routes.create(step.route, cliActor);
    if (step.action === "update") await mailroom.routes.update(step.name, step.route, cliActor);
  }
}

function printServer(view: EmailServerView): void {
  console.log(`${view.name}${view.isDefault ? " (default)" : ""}  [${view.driver}]  ${view.status}`);
  console.log(`  id: ${view.id}`);
  console.log(`  from: ${view.fromName ? `${view.fromName} ` : ""}<${view.fromAddress}>`);
  for (const [key, value] of Object.entries(view.settings)) {
    const shown =
      value && typeof value === "object" && "set" in value ? (value.set ? "[set]" : "[not set]") : JSON.stringify(value);
    console.log(`  ${key}: ${shown}`);
  }
  if (view.statusDetail) console.log(`  status: ${view.statusDetail}`);
}

export async function serversCommand(
  mailroom: Mailroom,
  sub: string | undefined,
  arg: string | undefined,
  options: { format?: string; output?: string; "dry-run"?: boolean },
): Promise<number> {
  switch (sub) {
    case "list": {
      const { items } = await mailroom.servers.list({ limit: 10_000 });
      for (const s of items) console.log(`${s.isDefault ? "*" : " "} ${s.name}  [${s.driver}]  ${s.status}  ${s.id}`);
      return 0;
    }
    case "show":
      if (!arg) break;
      printServer(await mailroom.servers.get(arg));
      return 0;
    case "export": {
      const format = options.format ?? (options.output?.endsWith(".json") ? "json" : "yaml");
      if (format !== "yaml" && format !== "json") break;
      const data = await exportServers(mailroom);
      const text = format === "json" ? `${JSON.stringify(data, null, 2)}\n` : YAML.stringify(data);
      if (options.output) fs.writeFileSync(options.output, text);
      else process.stdout.write(text);
      return 0;
    }
    case "import": {
      if (!arg) break;
      const steps = await planImport(mailroom, fs.readFileSync(arg, "utf8"), process.env);
      for (const step of steps) {
        console.log(`${step.action.padEnd(9)} ${step.name}`);
        for (const change of step.action === "update" ? step.changes : []) console.log(`            ${change}`);
        for (const warning of step.warnings) console.log(`   warning: ${warning}`);
      }
      if (options["dry-run"]) {
        console.log("Dry run: nothing was changed.");
        return 0;
      }
      await applyImport(mailroom, steps);
      return 0;
    }
  }
  console.error("mailroom: servers list | show <server> | export [--format yaml|json] [--output FILE] | import FILE [--dry-run]");
  return 2;
}
