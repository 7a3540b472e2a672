import type { FastifyInstance, FastifyRequest } from "fastify";
import { type FieldProblem, fieldError } from "../kernel/errors.js";

// NUL, the other C0 controls but TAB, LF and CR, and DEL: no field may hold them. PostgreSQL
// cannot store NUL in text at all, and the rest are invisible in every place a value is shown.
const NEVER = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const LINE = /[\t\n\r]/;

/**
 * JSON body fields that may hold TAB, LF and CR, as dotted paths (array indexes are numbers).
 * The message's text, html and attachment content are multi-line. Header fields of a message
 * and driver settings are passed on as well: their own checks refuse a line break with the
 * codes clients already know (header_injection, invalid_setting) and accept a folding tab.
 */
const MESSAGE_FIELDS = [
  "text",
  "html",
  "attachments\\.\\d+\\.(content|filename|contentType|contentId)",
  "subject",
  "headers\\.[^.]+",
  "(from|to|cc|bcc|replyTo)(\\.\\d+)?(\\.(name|address))?",
].join("|");
const LINE_BREAKS_PASS = new RegExp(
  `^((messages\\.\\d+\\.)?(${MESSAGE_FIELDS})|(server\\.)?settings\\.[^.]+(\\.\\d+)?|value(\\.\\d+)?)$`,
);

function describeCharacter(text: string): string {
  const found = NEVER.exec(text) ?? LINE.exec(text);
  const code = found?.[0].charCodeAt(0) ?? 0;
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  const names: Record<number, string> = { 0: "NUL", 9: "TAB", 10: "LF", 13: "CR", 127: "DEL" };
  return names[code] ? `${hex} (${names[code]})` : hex;
}

function problemIn(field: string, text: string, linesAllowed: boolean): FieldProblem | null {
  if (NEVER.test(text)) {
    return { field, message: `contains the control character ${describeCharacter(text)}; remove it` };
  }
  if (!linesAllowed && LINE.test(text)) {
    return {
      field,
      message: `contains the control character ${describeCharacter(text)}; remove it (only a message's text, html and attachment content may hold line breaks and tabs)`,
    };
  }
  return null;
}

/**
 * Every string of a parsed JSON body, with its dotted path; object keys are checked as
 * strings too. Iterative, so a deeply nested body cannot exhaust the stack.
 */
function bodyProblems(body: unknown, limit: number): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const pending: [string, unknown][] = [["", body]];
  // Breadth first, so the first problem named is the outermost one.
  for (let i = 0; i < pending.length && problems.length < limit; i++) {
    const [path, value] = pending[i];
    if (typeof value === "string") {
      const problem = problemIn(path || "body", value, LINE_BREAKS_PASS.test(path));
      if (problem) problems.push(problem);
    } else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) pending.push([path ? `${path}.${i}` : String(i), item]);
    } else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        const keyProblem = problemIn(path || "body", key, false);
        if (keyProblem) problems.push({ ...keyProblem, message: `has a field name that ${keyProblem.message}` });
        pending.push([path ? `${path}.${key}` : key, item]);
      }
    }
  }
  return problems;
}

/**
 * Query string and path parameter values: one line of text each. The one exception is an
 * OAuth provider's error_description on the callback: Microsoft's spans lines ("AADSTS…\r\nTrace ID: …").
 */
function partProblems(part: "querystring" | "params", values: unknown): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const [key, value] of Object.entries((values ?? {}) as Record<string, unknown>)) {
    const linesAllowed = part === "querystring" && key === "error_description";
    for (const [i, text] of [key, ...(Array.isArray(value) ? value : [value])].entries()) {
      const problem = typeof text === "string" ? problemIn(`${part}.${key}`, text, linesAllowed && i > 0) : null;
      if (problem) problems.push(problem);
    }
  }
  return problems;
}

export function controlCharacterProblems(
  request: Pick<FastifyRequest, "params" | "query" | "body">,
  checkBody = true,
): FieldProblem[] {
  return [
    ...partProblems("params", request.params),
    ...partProblems("querystring", request.query),
    ...(checkBody ? bodyProblems(request.body, 20) : []),
  ];
}

/**
 * Refuses control characters in every path parameter, query value and JSON string before
 * schema checks, handlers or a database see them: one rule for every route, on both databases.
 * It runs after authentication, so an anonymous caller still learns nothing but 401.
 */
export function registerControlCharacterCheck(app: FastifyInstance): void {
  app.addHook("preValidation", async (request) => {
    // A provider's payload (a bounce's multi-line diagnostic) is the provider's: the route cleans what it keeps.
    const problems = controlCharacterProblems(request, !request.routeOptions.config.providerWebhook);
    if (problems.length > 0) throw fieldError("control_characters", problems);
  });
}
