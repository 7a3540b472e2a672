import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import { findDriver } from "../drivers/registry.js";
import type { Settings } from "../kernel/settings.js";
import { type AccessTokenProvider, DeliveryError, type Transport } from "../kernel/transport.js";
import type { EmailServersTable } from "../storage/schema.js";
import { appOnlyTransport } from "./app-only.js";

/** Gives the OAuth drivers their tokens; set by src/oauth. */
export type TokenProviderFactory = (serverId: string) => AccessTokenProvider;
/** App-only tokens of a server (null: a person authorizes it); `oneOff` for a test, never stored. */
export type AppTokenProviderFactory = (
  row: EmailServersTable,
  secrets: Record<string, string>,
  oneOff: boolean,
) => AccessTokenProvider | null;

/**
 * One transport per email server, reused across messages (pooled SMTP connections stay
 * open), rebuilt when the server's settings change and closed when it is deleted.
 */
export class TransportCache {
  private readonly entries = new Map<string, { version: number; transport: Transport }>();
  tokenProviders?: TokenProviderFactory;
  appTokenProviders?: AppTokenProviderFactory;

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly poolSize: number,
  ) {}

  get(row: EmailServersTable): Transport {
    const cached = this.entries.get(row.id);
    if (cached && cached.version === row.updated_at) return cached.transport;
    if (cached) void cached.transport.close().catch(() => {});
    const transport = this.build(row);
    this.entries.set(row.id, { version: row.updated_at, transport });
    return transport;
  }

  /**
   * A transport for a one-off use (tests of a saved or draft server); the caller closes it.
   * `maxTimeoutMs` caps every wait, whatever the server's settings say.
   */
  build(
    row: EmailServersTable,
    secrets = this.servers.secretsOf(row),
    options: { maxTimeoutMs?: number; oneOff?: boolean } = {},
  ): Transport {
    const driver = findDriver(row.driver);
    if (!driver?.createTransport) {
      throw new DeliveryError("internal_error", "server", `The ${row.driver} driver cannot send.`);
    }
    let tokens: AccessTokenProvider | undefined;
    const appTokens = driver.oauthProvider ? this.appTokenProviders?.(row, secrets, options.oneOff ?? false) : null;
    if (appTokens) {
      tokens = appTokens;
    } else if (driver.oauthProvider) {
      if (!this.tokenProviders) throw new DeliveryError("oauth_not_authorized", "server", "OAuth is not available.");
      // No grant on the row (never authorized, or dropped when its destination changed):
      // no token is asked for, whatever another process may still have cached.
      if (!row.oauth_account) {
        throw new DeliveryError("oauth_not_authorized", "server", `No account is authorized for ${row.name}.`);
      }
      tokens = this.tokenProviders(row.id);
    }
    const transport = driver.createTransport({
      serverId: row.id,
      serverName: row.name,
      fromAddress: row.from_address,
      settings: JSON.parse(row.settings) as Settings,
      secrets,
      dataDir: this.ctx.config.dataDir,
      log: this.ctx.log.child({ server: row.name }),
      tokens,
      poolSize: this.poolSize,
      trustedCa: this.ctx.config.extraCa,
      operator: this.ctx.config.operator,
      maxTimeoutMs: options.maxTimeoutMs,
    });
    return appTokens ? appOnlyTransport(transport, row, appTokens) : transport;
  }

  async forget(serverId: string): Promise<void> {
    const cached = this.entries.get(serverId);
    this.entries.delete(serverId);
    await cached?.transport.close();
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(all.map((e) => e.transport.close()));
  }
}
