/** `npm run bench -- <name> [--flags]`: runs one benchmark (never part of `npm test`). */
const names = ["delivery", "queue", "latency", "accept", "oauth", "backlog", "smtp", "erasure", "retention"];
const name = process.argv[2];
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- <${names.join("|")}> [--n=…] [--db=sqlite|postgres]`);
  process.exit(2);
}
await import(`./${name}.js`);
