#!/usr/bin/env node
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(built)) {
  console.error("Mailroom is not built yet: run 'npm run build' (npm start does it for you).");
  process.exit(1);
}
const { main } = await import(built);
process.exitCode = await main(process.argv.slice(2));
