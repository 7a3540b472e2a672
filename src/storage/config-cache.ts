import type {
  KyselyPlugin,
  OperationNode,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from "kysely";

/**
 * The tables whose reads the cache keeps: what accepting a message reads on every request
 * (the API token and its owner, the default server, the route rules). A write to any of
 * them through this process's database handle empties the cache.
 */
const CONFIG_TABLES = new Set(["api_tokens", "users", "groups", "user_groups", "email_servers", "routes"]);

/** Columns a write may change without emptying the cache: a token's use, recorded once a minute. */
const IGNORED_UPDATES = new Set(["last_used_at"]);

/**
 * A short-lived cache of configuration reads, so a single-message request does not read the
 * token, the default server and the routes again each time (three round trips on PostgreSQL).
 *
 * How stale a value can be:
 * - a change made by this process: never. A write to a config table (seen by the plugin on
 *   the database handle) empties the cache, and nothing read within `ttlMs` after it is kept,
 *   since the write's transaction may not have committed yet;
 * - a change made by another process: at most `ttlMs` (PostgreSQL; on SQLite another
 *   connection's commit is seen through `changedElsewhere`, PRAGMA data_version, at once).
 */
export class ConfigCache {
  private readonly entries = new Map<string, { value: Promise<unknown>; loadedAt: number }>();
  private lastWriteAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly ttlMs = 1000,
    /** True when another connection changed the database since the last call (SQLite). */
    private readonly changedElsewhere: () => boolean = () => false,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value of `key`, loaded by `load` unless a fresh one is kept. A failed load is not kept. */
  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    if (this.changedElsewhere()) this.entries.clear();
    const now = this.now();
    const kept = this.entries.get(key);
    if (kept && now - kept.loadedAt < this.ttlMs) return kept.value as Promise<T>;
    const value = load();
    if (now - this.lastWriteAt >= this.ttlMs) {
      this.entries.set(key, { value, loadedAt: now });
      value.catch(() => {
        if (this.entries.get(key)?.value === value) this.entries.delete(key);
      });
    }
    return value;
  }

  /** A config table was written: forget everything, and keep nothing read for a moment. */
  written(): void {
    this.lastWriteAt = this.now();
    this.entries.clear();
  }

  /** Watches the queries of a database handle for writes to config tables. */
  plugin(): KyselyPlugin {
    return {
      transformQuery: ({ node }: PluginTransformQueryArgs): RootOperationNode => {
        if (writesConfig(node)) this.written();
        return node;
      },
      transformResult: async ({ result }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> => result,
    };
  }
}

/** Whether a statement inserts into, updates or deletes from a config table. */
function writesConfig(node: RootOperationNode): boolean {
  switch (node.kind) {
    case "InsertQueryNode":
      return CONFIG_TABLES.has(tableName(node.into));
    case "UpdateQueryNode": {
      if (!CONFIG_TABLES.has(tableName(node.table))) return false;
      const columns = (node.updates ?? []).map((u) => columnName(u.column));
      return columns.length === 0 || columns.some((c) => !IGNORED_UPDATES.has(c));
    }
    case "DeleteQueryNode":
      return node.from.froms.some((f) => CONFIG_TABLES.has(tableName(f)));
    default:
      return false;
  }
}

type Named = OperationNode & {
  table?: { identifier?: { name?: string } };
  node?: OperationNode;
  column?: { name?: string };
};

function tableName(node: OperationNode | undefined): string {
  const n = node as Named | undefined;
  if (!n) return "";
  if (n.kind === "AliasNode") return tableName(n.node);
  return n.kind === "TableNode" ? (n.table?.identifier?.name ?? "") : "";
}

function columnName(node: OperationNode): string {
  const n = node as Named;
  return n.kind === "ColumnNode" ? (n.column?.name ?? "") : "";
}
