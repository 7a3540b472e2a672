/**
 * The outcome of "Authorize account": the provider's callback sends the browser back with
 * ?oauth=success or ?oauth=error&code=<catalogue code>. The fix comes from the same error
 * catalogue the API uses.
 */
import { errorCatalogue } from "../../src/kernel/errors.js";

export function oauthBanner(search: URLSearchParams): { kind: "success" | "error"; text: string } | null {
  const outcome = search.get("oauth");
  if (outcome === "success") return { kind: "success", text: "The account is authorized: this server can send now." };
  if (outcome === "error") {
    const code = search.get("code") ?? "oauth_provider_error";
    const entry = (errorCatalogue as Record<string, { summary: string } | undefined>)[code];
    return { kind: "error", text: `Authorization failed (${code}): ${entry?.summary ?? "the provider refused; try again."}` };
  }
  return null;
}
