import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

type Job<T> = (trx: Kysely<Database>) => Promise<T>;

interface Pending {
  job: Job<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: small writes that arrive together (messages accepted by concurrent
 * requests, results of concurrent deliveries) share one transaction, so the database
 * commits once for many of them. Each caller still hears of its own write only after the
 * commit. If a group fails, its jobs are run again one transaction each, so one bad job
 * cannot fail the others.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private draining: Promise<void> | null = null;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxGroup = 200,
  ) {}

  run<T>(job: Job<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ job, resolve: resolve as (value: unknown) => void, reject });
      this.draining ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    // Let the rest of this turn of the event loop join the first group.
    await new Promise((r) => setImmediate(r));
    while (this.pending.length) {
      const group = this.pending.splice(0, this.maxGroup);
      if (group.length === 1) {
        await this.alone(group[0]);
        continue;
      }
      try {
        const results = await this.db.transaction().execute(async (trx) => {
          const out: unknown[] = [];
          for (const p of group) out.push(await p.job(trx));
          return out;
        });
        for (const [i, p] of group.entries()) p.resolve(results[i]);
      } catch {
        for (const p of group) await this.alone(p);
      }
    }
    this.draining = null;
  }

  private async alone(p: Pending): Promise<void> {
    try {
      p.resolve(await this.db.transaction().execute(p.job));
    } catch (error) {
      p.reject(error);
    }
  }
}

/**
 * Batch writing for one kind of write: items that arrive in the same turn of the event loop
 * are written by one call of `writeAll` (one set-based statement instead of one per item).
 * Each caller hears of its own item only after the write. If a batch fails, its items are
 * written again one at a time, so one bad item cannot fail the others.
 */
export class BatchWriter<T, R> {
  private pending: { item: T; resolve: (value: R) => void; reject: (error: unknown) => void }[] = [];
  private draining: Promise<void> | null = null;

  constructor(
    private readonly writeAll: (items: T[]) => Promise<R[]>,
    private readonly maxBatch = 200,
    /**
     * While this returns a promise, a drain waits for it first: someone else is about to
     * take the waiting items (see take), in a statement already on its way.
     */
    private readonly gate: () => Promise<unknown> | undefined = () => undefined,
    /** How long the first item waits for others (0: the rest of its turn of the event loop), asked when it arrives. */
    private readonly linger: () => number = () => 0,
  ) {}

  /** Items waiting to be written. */
  get waiting(): number {
    return this.pending.length;
  }

  write(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /**
   * Hands up to `max` waiting items to a caller that writes them itself (in a statement it
   * sends anyway); it must call `done` with their results, or `failed`.
   */
  take(max = this.maxBatch): { items: T[]; done: (results: R[]) => void; failed: (error: unknown) => void } {
    const taken = this.pending.splice(0, max);
    return {
      items: taken.map((p) => p.item),
      done: (results) => {
        for (const [i, p] of taken.entries()) p.resolve(results[i]);
      },
      failed: (error) => {
        for (const p of taken) p.reject(error);
      },
    };
  }

  private async drain(): Promise<void> {
    const lingerMs = this.linger();
    await new Promise((r) => (lingerMs > 0 ? setTimeout(r, lingerMs) : setImmediate(r)));
    for (let gate = this.gate(); gate; gate = this.gate()) {
      await gate.catch(() => {});
      await new Promise((r) => setImmediate(r));
    }
    while (this.pending.length) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        const results = await this.writeAll(batch.map((p) => p.item));
        for (const [i, p] of batch.entries()) p.resolve(results[i]);
      } catch (error) {
        if (batch.length === 1) batch[0].reject(error);
        else for (const p of batch) await this.writeAll([p.item]).then(([r]) => p.resolve(r), p.reject);
      }
    }
    this.draining = null;
  }
}
