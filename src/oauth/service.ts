import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import type { AccessTokenProvider } from "../kernel/transport.js";
import type { EmailServersTable } from "../storage/schema.js";
import { appCredentialsOf, directAppTokens } from "./app-credentials.js";
import { OAuthFlow } from "./flow.js";
import { TokenStore, type TokenStoreOptions } from "./token-store.js";

export type OAuthServiceOptions = TokenStoreOptions;

/** Mailroom's OAuth: the authorize/callback/disconnect flow and the token store. */
export class OAuthService {
  readonly tokens: TokenStore;
  readonly flow: OAuthFlow;

  private readonly timeoutSeconds?: number;

  constructor(
    private readonly ctx: AppContext,
    servers: EmailServerService,
    options: OAuthServiceOptions = {},
  ) {
    this.timeoutSeconds = options.requestTimeoutSeconds;
    this.tokens = new TokenStore(ctx, servers, options);
    this.flow = new OAuthFlow(ctx, servers, this.tokens, options.requestTimeoutSeconds);
  }

  /** The access tokens of one Gmail or Microsoft 365 server, for its SMTP transport. */
  tokenProvider(serverId: string): AccessTokenProvider {
    return this.tokens.tokenProvider(serverId);
  }

  /**
   * The tokens of a server with app-only credentials: for delivery, from the token store
   * (one request per lifetime across processes); for a test (`oneOff`), asked for directly
   * with the credentials under test and never stored. null if a person authorizes the server.
   */
  appTokenProvider(row: EmailServersTable, secrets: Record<string, string>, oneOff: boolean): AccessTokenProvider | null {
    const creds = appCredentialsOf(row, secrets);
    if (!creds) return null;
    if (oneOff) return directAppTokens(creds, this.ctx.config.oauth, this.timeoutSeconds);
    return this.tokens.appTokenProvider(row.id, { provider: creds.provider.id, mailbox: creds.mailbox, version: row.updated_at });
  }
}
