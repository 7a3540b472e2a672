/**
 * What only the operator decides (the environment, read by src/config.ts): which programs
 * the sendmail driver may run, and which endpoints beyond the providers' own hosts Mailroom
 * may reach. Admins choose among these; no setting can widen them. Link-local and cloud
 * metadata addresses are refused for every driver unless the operator lists them.
 */
import { type LookupAddress, lookup } from "node:dns";
import { lookup as lookupAsync } from "node:dns/promises";
import net from "node:net";
import type { AllowedEndpoint, OperatorPolicy } from "../kernel/operator-policy.js";
import { DeliveryError } from "../kernel/transport.js";

/** Where a connection goes, as the allow-list matches it. */
export interface Destination {
  protocol?: string;
  host: string;
  port: number;
}

function bareHost(host: string): string {
  return host.replace(/^\[|\]$/g, "").toLowerCase();
}

const DEFAULT_PORTS: Record<string, number> = { "http:": 80, "https:": 443 };

/** Parses one allow-list entry; undefined when it is none of the accepted forms. */
export function parseAllowedEndpoint(entry: string): AllowedEndpoint | undefined {
  if (/^https?:\/\//i.test(entry)) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      return undefined;
    }
    if (url.username || url.password || url.search || url.hash || (url.pathname !== "/" && url.pathname !== "")) {
      return undefined;
    }
    const protocol = url.protocol as "http:" | "https:";
    return { protocol, host: bareHost(url.hostname), port: url.port ? Number(url.port) : DEFAULT_PORTS[protocol] };
  }
  const match = /^(\[[0-9a-f:.]+\]|[^:/\s[\]]+)(?::(\d{1,5}))?$/i.exec(entry);
  if (!match) return undefined;
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { host: bareHost(match[1]), ...(port === undefined ? {} : { port }) };
}

export function isEndpointAllowed(operator: OperatorPolicy, to: Destination): boolean {
  const host = bareHost(to.host);
  return operator.allowedEndpoints.some(
    (e) =>
      e.host === host &&
      (e.port === undefined || e.port === to.port) &&
      (e.protocol === undefined || to.protocol === undefined || e.protocol === to.protocol),
  );
}

const forbidden = new net.BlockList();
forbidden.addSubnet("169.254.0.0", 16, "ipv4"); // link-local, with the clouds' metadata service at .169.254
forbidden.addAddress("100.100.100.200", "ipv4"); // Alibaba Cloud's metadata service
forbidden.addSubnet("fe80::", 10, "ipv6"); // link-local
forbidden.addAddress("fd00:ec2::254", "ipv6"); // AWS's metadata service over IPv6

/** A link-local or cloud metadata address (IPv4-mapped IPv6 included). */
export function isLinkLocalOrMetadata(address: string): boolean {
  const bare = bareHost(address).replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)?.[1];
  if (mapped) return forbidden.check(mapped, "ipv4");
  const family = net.isIP(bare);
  if (family === 4) return forbidden.check(bare, "ipv4");
  if (family === 6) return forbidden.check(bare, "ipv6");
  return false;
}

function refused(to: Destination, address: string): DeliveryError {
  const where = `${to.host}:${to.port}`;
  const via = bareHost(to.host) === address ? "" : ` (it resolves to ${address})`;
  return new DeliveryError(
    "endpoint_not_allowed",
    "server",
    `${where} is a link-local or cloud metadata address${via}: Mailroom does not connect there unless the operator lists it in MAILROOM_ALLOWED_ENDPOINTS.`,
  );
}

/** Throws endpoint_not_allowed when any of the addresses is link-local or metadata and the destination is not listed. */
export function assertAddressesAllowed(operator: OperatorPolicy, to: Destination, addresses: string[]): void {
  const bad = addresses.find(isLinkLocalOrMetadata);
  if (bad !== undefined && !isEndpointAllowed(operator, to)) throw refused(to, bad);
}

/**
 * Resolves a host and refuses link-local and metadata addresses. For the HTTP drivers, whose
 * host is a provider's or one the operator listed, so that no admin can point a DNS name at
 * an address between this check and the connection.
 */
export async function checkResolvedHost(operator: OperatorPolicy, to: Destination): Promise<void> {
  const host = bareHost(to.host);
  if (net.isIP(host)) return assertAddressesAllowed(operator, to, [host]);
  let found: LookupAddress[];
  try {
    found = await lookupAsync(host, { all: true });
  } catch {
    return; // the request itself reports a name that does not resolve
  }
  assertAddressesAllowed(
    operator,
    to,
    found.map((a) => a.address),
  );
}

/**
 * A `lookup` for http.Agent and net.connect that refuses link-local and metadata addresses
 * at connect time, so the address checked is the address connected to.
 */
export function guardedLookup(operator: OperatorPolicy, to: Omit<Destination, "host">): net.LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      const answer = callback as (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
      if (err) return answer(err, options.all ? [] : "");
      try {
        assertAddressesAllowed(
          operator,
          { ...to, host: hostname },
          addresses.map((a) => a.address),
        );
      } catch (refusal) {
        return answer(refusal as DeliveryError, options.all ? [] : "");
      }
      if (options.all) return answer(null, addresses);
      answer(null, addresses[0].address, addresses[0].family);
    });
  };
}

/**
 * A provider's API base: one of its own (`known`) or one the operator allowed. Never a URL
 * with credentials, a query or a fragment, which would bend the requests built on it.
 */
export function checkProviderBase(
  provider: string,
  base: string,
  known: readonly string[],
  operator: OperatorPolicy,
): { url: URL } | { problem: string } {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    return { problem: "must be an http:// or https:// URL" };
  }
  if (url.username || url.password || url.search || url.hash) {
    return { problem: "must be a plain base URL, without a user, password, query or fragment" };
  }
  const origin = url.origin;
  const port = url.port ? Number(url.port) : (DEFAULT_PORTS[url.protocol] ?? 0);
  if (known.includes(origin) || isEndpointAllowed(operator, { protocol: url.protocol, host: url.hostname, port })) {
    return { url };
  }
  return {
    problem: `must be ${provider}'s own API address (${known.join(" or ")}), or an endpoint the operator lists in MAILROOM_ALLOWED_ENDPOINTS; ${origin} is neither`,
  };
}

/** checkProviderBase for a transport: a refused base is a server problem with a catalogue code. */
export function providerBase(provider: string, base: string, known: readonly string[], operator: OperatorPolicy): URL {
  const checked = checkProviderBase(provider, base, known, operator);
  if ("problem" in checked) {
    throw new DeliveryError("endpoint_not_allowed", "server", `The ${provider} API base URL ${checked.problem}.`);
  }
  return checked.url;
}

/**
 * `base` with path segments appended, each percent-encoded: a setting (a domain, a stream
 * name) can never add a path, a query or a dot segment to a provider's URL.
 */
export function endpointUrl(base: URL, segments: string[]): URL {
  const url = new URL(base.href);
  const encoded = segments.map((s) => (s === "." || s === ".." ? s.replace(/\./g, "%2E") : encodeURIComponent(s)));
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${encoded.join("/")}`;
  return url;
}

/** The port a URL connects to. */
export function urlPort(url: URL): number {
  return url.port ? Number(url.port) : (DEFAULT_PORTS[url.protocol] ?? 0);
}
