/**
 * Bench-only instruments (`--probe` on bench/delivery.ts): how many sends are in flight over
 * time, and how long each stage of a message takes. They wrap a running Mailroom's objects
 * from the outside (private fields included, which is why this lives in bench/ and never in
 * src/), so Mailroom's code carries no counters for it.
 *
 * These figures hardly depend on the machine's other load (a concurrency is a count, not a
 * rate), which is why they are the ones to trust when the wall clock is noisy.
 */
import pg from "pg";
import type { Mailroom } from "../src/app.js";

/** Statements sent to PostgreSQL by this process, by kind: a count per message the load does not change. */
export class StatementCount {
  readonly kinds = new Map<string, number>();
  private readonly original = pg.Client.prototype.query;

  start(): void {
    this.kinds.clear();
    const kinds = this.kinds;
    const original = this.original;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const first = args[0];
      const text = typeof first === "string" ? first : ((first as { text?: string })?.text ?? "");
      kinds.set(kindOf(text), (kinds.get(kindOf(text)) ?? 0) + 1);
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof pg.Client.prototype.query;
  }

  stop(): void {
    pg.Client.prototype.query = this.original;
  }

  summary(messages: number): string {
    const total = [...this.kinds.values()].reduce((s, n) => s + n, 0);
    const parts = [...this.kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`);
    return `${(total / messages).toFixed(2)} per message (${total}: ${parts.join(", ")})`;
  }
}

/** A statement's kind: its verb and the table it names first. */
function kindOf(text: string): string {
  const t = text.replace(/\s+/g, " ").trim().toLowerCase();
  if (t.includes('insert into "messages"') && t.includes("pg_notify")) return "insert messages + notify";
  if (t.includes("pg_notify")) return "notify";
  if (/^(begin|commit|rollback)/.test(t)) return t.split(" ")[0];
  if (t.includes("row_number() over (partition by server_id")) return "claim";
  if (t.startsWith("with result as")) return "settle";
  const verb = t.split(" ")[0];
  const table = /(?:from|into|update) "?([a-z_]+)"?/.exec(t)?.[1] ?? "?";
  return `${verb} ${table}`;
}
/** A count over time: how long it spent at each value (time-weighted, not sampled). */
export class Level {
  value = 0;
  private since = performance.now();
  private readonly spent = new Map<number, number>();

  up(by = 1): void {
    this.move(this.value + by);
  }

  down(by = 1): void {
    this.move(this.value - by);
  }

  private move(to: number): void {
    const now = performance.now();
    this.spent.set(this.value, (this.spent.get(this.value) ?? 0) + now - this.since);
    this.since = now;
    this.value = to;
  }

  /** Mean and percentiles over time; `share` is the fraction of time at or above `atLeast`. */
  summary(atLeast: number): string {
    this.move(this.value);
    const levels = [...this.spent.entries()].sort((a, b) => a[0] - b[0]);
    const total = levels.reduce((s, [, t]) => s + t, 0) || 1;
    const mean = levels.reduce((s, [v, t]) => s + v * t, 0) / total;
    const at = (p: number) => {
      let acc = 0;
      for (const [v, t] of levels) {
        acc += t;
        if (acc / total >= p) return v;
      }
      return levels.at(-1)?.[0] ?? 0;
    };
    const share = levels.filter(([v]) => v >= atLeast).reduce((s, [, t]) => s + t, 0) / total;
    return `mean ${mean.toFixed(1)}, p10 ${at(0.1)}, p50 ${at(0.5)}, p90 ${at(0.9)}, time at >= ${atLeast}: ${(100 * share).toFixed(0)}%`;
  }
}

/** Durations of one stage. */
export class Stage {
  readonly times: number[] = [];
  add(ms: number): void {
    this.times.push(ms);
  }
  summary(): string {
    const xs = [...this.times].sort((a, b) => a - b);
    const p = (q: number) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(xs.length * q))] : 0);
    const mean = xs.reduce((s, x) => s + x, 0) / (xs.length || 1);
    return `n ${xs.length}, mean ${mean.toFixed(2)} ms, p50 ${p(0.5).toFixed(2)}, p90 ${p(0.9).toFixed(2)}`;
  }
}

export interface MailroomProbe {
  report(label: string): void;
}

// biome-ignore lint/suspicious/noExplicitAny: reaching into private fields is the point of a probe
type Any = any;

/** Instruments a started Mailroom whose worker has nothing in flight yet. */
export function probeMailroom(mailroom: Mailroom, pool: number): MailroomProbe {
  const worker = mailroom.worker as Any;
  const inWorker = new Level();
  const inTransport = new Level();
  const settling = new Level();
  const claim = new Stage();
  const claimSize = new Stage();
  const beforeSend = new Stage();
  const send = new Stage();
  const settle = new Stage();
  const settleBatch = new Stage();
  const settleStatement = new Stage();
  const dispatchedAt = new Map<string, number>();
  const createdAt = performance.now();
  let firstDispatchAt = 0;
  let firstSendAt = 0;
  let firstSentAt = 0;

  // The worker's in-flight map: a message is in flight from its claim until its result is written.
  const map: Map<string, unknown> = worker.inFlight;
  const set = map.set.bind(map);
  const del = map.delete.bind(map);
  map.set = (k: string, v: unknown) => {
    if (!map.has(k)) inWorker.up();
    return set(k, v);
  };
  map.delete = (k: string) => {
    if (map.has(k)) inWorker.down();
    return del(k);
  };

  // A claim: from asking for the quotas to handing the claimed messages out.
  let claimStarted = 0;
  const quotas = worker.quotas.bind(worker);
  let lastQuotas = "";
  worker.quotas = (free: number) => {
    claimStarted = performance.now();
    const q = quotas(free);
    lastQuotas = `free ${free}, quotas ${JSON.stringify(q.quotas.map((x: { limit: number }) => x.limit))}, others ${q.others}, sending ${worker.sending}, in flight ${map.size}, healthy ${q.quotas.map((x: { serverId: string }) => worker.isHealthy(x.serverId, Date.now())).join("/")}`;
    return q;
  };
  const dispatch = worker.dispatch.bind(worker);
  worker.dispatch = (claimed: { id: string }[], servers: unknown) => {
    const now = performance.now();
    claim.add(now - claimStarted);
    claimSize.add(claimed.length);
    if (process.argv.includes("--trace-claims") && claimSize.times.length % 50 === 0) {
      console.log(`#   claim: ${lastQuotas} -> ${claimed.length}`);
    }
    if (claimed.length === 0 && process.argv.includes("--why-empty")) {
      const at = Date.now();
      void mailroom.ctx.db
        .selectFrom("messages")
        .select((eb) => [eb.fn.countAll<number>().as("n"), eb.fn.min<number>("next_attempt_at").as("first")])
        .where("status", "=", "queued")
        .executeTakeFirst()
        .then((r) =>
          console.log(
            `#   empty claim: ${lastQuotas}, worker ${map.size}; queued ${r?.n}, first due in ${Number(r?.first) - at} ms`,
          ),
        );
    }
    for (const row of claimed) dispatchedAt.set(row.id, now);
    if (!firstDispatchAt && claimed.length) firstDispatchAt = now;
    return dispatch(claimed, servers);
  };

  // The loop's waits: a wait that lasts a whole poll was not woken by a completion or an enqueue.
  const idle = new Stage();
  const idleWith = new Stage();
  const original = worker.idle.bind(worker);
  worker.idle = async (failures: number) => {
    const started = performance.now();
    idleWith.add(map.size);
    const before = `worker ${map.size}, transport ${inTransport.value}, settling ${settling.value}`;
    await original(failures);
    idle.add(performance.now() - started);
    if (performance.now() - started > 500)
      console.log(
        `#   long wait: at its start ${before}; at its end worker ${map.size}, transport ${inTransport.value}, settling ${settling.value}`,
      );
  };

  // The transport: sends handed to nodemailer's pool and not answered yet.
  const wrapped = new WeakSet<object>();
  const get = mailroom.transports.get.bind(mailroom.transports);
  mailroom.transports.get = (row) => {
    const transport = get(row) as Any;
    if (!wrapped.has(transport)) {
      wrapped.add(transport);
      const original = transport.send.bind(transport);
      transport.send = async (message: { id: string }) => {
        const started = performance.now();
        beforeSend.add(started - (dispatchedAt.get(message.id) ?? started));
        if (beforeSend.times.length === 1) firstSendAt = started;
        inTransport.up();
        try {
          return await original(message);
        } finally {
          inTransport.down();
          send.add(performance.now() - started);
          if (!firstSentAt) firstSentAt = performance.now();
        }
      };
    }
    return transport;
  };

  // Results: from the send's end (the write asked) to the write done, and the statements.
  const results = worker.results as Any;
  const write = results.write.bind(results);
  results.write = async (item: { id: string }) => {
    const started = performance.now();
    settling.up();
    try {
      return await write(item);
    } finally {
      settling.down();
      settle.add(performance.now() - started);
      dispatchedAt.delete(item.id);
    }
  };
  const carried = new Stage();
  const take = results.take.bind(results);
  results.take = (max?: number) => {
    const taken = take(max);
    if (taken.items.length) carried.add(taken.items.length);
    return taken;
  };
  const writeAll = results.writeAll;
  results.writeAll = async (items: unknown[]) => {
    const started = performance.now();
    settleBatch.add(items.length);
    try {
      return await writeAll(items);
    } finally {
      settleStatement.add(performance.now() - started);
    }
  };

  return {
    report(label) {
      console.log(`# probe ${label}`);
      console.log(
        `#   first claimed ${(firstDispatchAt - createdAt).toFixed(0)} ms after the start, first send began ${(firstSendAt - createdAt).toFixed(0)} ms, first ended ${(firstSentAt - createdAt).toFixed(0)} ms`,
      );
      console.log(`#   in flight in the worker (claimed, result not written): ${inWorker.summary(16)}`);
      console.log(`#   in flight in the transport (sendMail not answered): ${inTransport.summary(pool)}`);
      console.log(`#   results being written: ${settling.summary(1)}`);
      console.log(
        `#   loop waits: ${idle.summary()}, max ${Math.max(0, ...idle.times).toFixed(0)} ms, ${idle.times.filter((t) => t > 500).length} over 500 ms (a whole poll: no wake)`,
      );
      console.log(`#   in flight when the loop waits: ${idleWith.summary().replaceAll(" ms", "")}`);
      console.log(`#   claim (quotas + statement): ${claim.summary()}`);
      console.log(`#   messages per claim: ${claimSize.summary().replaceAll(" ms", "")}`);
      console.log(`#   claim -> send start (limiter, load): ${beforeSend.summary()}`);
      console.log(`#   transport send: ${send.summary()}`);
      console.log(`#   send end -> result written: ${settle.summary()}`);
      console.log(`#   results per write of their own: ${settleBatch.summary().replaceAll(" ms", "")}`);
      console.log(`#   results carried by a claim: ${carried.summary().replaceAll(" ms", "")}`);
      console.log(`#   result write statement: ${settleStatement.summary()}`);
    },
  };
}
