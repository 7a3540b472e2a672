/**
 * The data folder holds message bodies, password hashes, captured mail and the secret key:
 * it is 0700 and its files 0600 whatever the process umask (which can only remove bits, so
 * an explicit mode at creation is enough; chmod tightens what an older version left open).
 */
import fs from "node:fs";

export const PRIVATE_FOLDER_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Drops the permission bits beyond `mode` from an existing path. One that is missing, or
 * belongs to another user (whose choice it is, and chmod would fail), is left alone.
 */
function tighten(target: string, mode: number): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  const current = stat.mode & 0o777;
  if ((current & ~mode) === 0) return;
  if (process.getuid && stat.uid !== process.getuid()) return;
  fs.chmodSync(target, current & mode);
}

/** Creates the folder (and any missing parents) 0700, or tightens it when it exists and is ours. */
export function ensurePrivateFolder(folder: string): void {
  fs.mkdirSync(folder, { recursive: true, mode: PRIVATE_FOLDER_MODE });
  tighten(folder, PRIVATE_FOLDER_MODE);
}

/** Tightens an existing file of ours to 0600; a missing one is fine. */
export function tightenPrivateFile(file: string): void {
  tighten(file, PRIVATE_FILE_MODE);
}

/** Creates the file empty and 0600 unless it exists, then tightens it. */
export function ensurePrivateFile(file: string): void {
  fs.closeSync(fs.openSync(file, "a", PRIVATE_FILE_MODE));
  tighten(file, PRIVATE_FILE_MODE);
}
