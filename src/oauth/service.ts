import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import type { AccessTokenProvider } from "../kernel/transport.js";
import { OAuthFlow } from "./flow.js";
import { TokenStore, type TokenStoreOptions } from "./token-store.js";

export type OAuthServiceOptions = TokenStoreOptions;

/** Mailroom's OAuth: the authorize/callback/disconnect flow and the token store. */
export class OAuthService {
  readonly tokens: TokenStore;
  readonly flow: OAuthFlow;

  constructor(ctx: AppContext, servers: EmailServerService, options: OAuthServiceOptions = {}) {
    this.tokens = new TokenStore(ctx, servers, options);
    this.flow = new OAuthFlow(ctx, servers, this.tokens, options.requestTimeoutSeconds);
  }

  /** The access tokens of one Gmail or Microsoft 365 server, for its SMTP transport. */
  tokenProvider(serverId: string): AccessTokenProvider {
    return this.tokens.tokenProvider(serverId);
  }
}
