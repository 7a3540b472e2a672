/**
 * `mailroom.pid` in the data folder says a `mailroom serve` is using it, so that
 * `mailroom restore` can refuse to swap the database under a running process (which would
 * go on writing to the file it has open, and lose those writes).
 */
import fs from "node:fs";
import path from "node:path";
import { PRIVATE_FILE_MODE } from "./private-files.js";

const MARKER = "mailroom.pid";

export function runningMarkerOf(dataDir: string): string {
  return path.join(dataDir, MARKER);
}

/** Records this process as using the data folder; the returned function removes the mark if it is still ours. */
export function markRunning(dataDir: string): () => void {
  const file = runningMarkerOf(dataDir);
  fs.writeFileSync(file, `${process.pid}\n`, { mode: PRIVATE_FILE_MODE });
  return () => {
    try {
      if (fs.readFileSync(file, "utf8").trim() === String(process.pid)) fs.rmSync(file, { force: true });
    } catch {
      // Already gone: nothing to undo.
    }
  };
}

/** The id of a live process that marked the data folder, or null (none, or a mark left by a crash). */
export function runningProcess(dataDir: string): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(runningMarkerOf(dataDir), "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: it lives, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM" ? pid : null;
  }
}
