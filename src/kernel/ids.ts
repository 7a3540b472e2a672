import { randomUUID } from "node:crypto";

/** Random ids: never reused, even after a delete, and not guessable. */
export function newId(): string {
  return randomUUID();
}

export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
