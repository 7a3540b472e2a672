/** Per-client-address limits of the SMTP listener, in memory (each process guards its own sockets). */

export type Clock = () => number;

/**
 * Failed logins per client address in a sliding window. Once an address reaches `max`, AUTH
 * is refused to it until its oldest failure leaves the window, so guessing a token from one
 * address costs hours, while a mistyped token blocks nobody for long.
 */
export class AuthFailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: Clock = Date.now,
  ) {}

  /** Milliseconds until `ip` may try again; 0 when it may now. */
  retryAfterMs(ip: string): number {
    const recent = this.recent(ip);
    if (recent.length < this.max) return 0;
    return recent[recent.length - this.max] + this.windowMs - this.now();
  }

  recordFailure(ip: string): void {
    const recent = this.recent(ip);
    recent.push(this.now());
    this.failures.set(ip, recent);
    // Addresses seen once and never again must not pile up forever.
    if (this.failures.size > 10_000) this.prune();
  }

  private recent(ip: string): number[] {
    const since = this.now() - this.windowMs;
    const kept = (this.failures.get(ip) ?? []).filter((t) => t > since);
    if (kept.length === 0) this.failures.delete(ip);
    else this.failures.set(ip, kept);
    return kept;
  }

  private prune(): void {
    for (const ip of [...this.failures.keys()]) this.recent(ip);
  }
}

/** Open sessions per client address. */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts a session in; false (and nothing counted) when the address is at its limit. */
  tryOpen(ip: string): boolean {
    const n = this.open.get(ip) ?? 0;
    if (n >= this.max) return false;
    this.open.set(ip, n + 1);
    return true;
  }

  close(ip: string): void {
    const n = (this.open.get(ip) ?? 0) - 1;
    if (n <= 0) this.open.delete(ip);
    else this.open.set(ip, n);
  }
}
