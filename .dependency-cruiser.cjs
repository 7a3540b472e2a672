/**
 * The layering of src/ (docs/architecture.md): a module imports only from its own layer or
 * the layers listed before it. Type-only imports count, so a type cannot pull a layer up.
 * `npm run depcheck` runs this in CI beside lint and typecheck.
 */
const LAYERS = [
  { name: "kernel", path: "^src/kernel/" },
  { name: "storage", path: "^src/storage/" },
  { name: "transport", path: "^src/transport/" },
  { name: "drivers", path: "^src/drivers/" },
  { name: "config", path: "^src/config\\.ts$" },
  { name: "services", path: "^src/(core|auth)/" },
  { name: "metrics", path: "^src/metrics\\.ts$" },
  { name: "delivery", path: "^src/(queue|oauth|intake)/" },
  { name: "events", path: "^src/events/" },
  { name: "app", path: "^src/(app|logger)\\.ts$" },
  { name: "http", path: "^src/http/" },
  { name: "cli", path: "^src/cli/" },
];

const either = (paths) => paths.map((p) => `(${p})`).join("|");

const layerRules = LAYERS.map((layer, i) => ({
  name: `layer-${layer.name}`,
  comment: `${layer.name} imports only from itself and the layers below it (${
    LAYERS.slice(0, i).map((l) => l.name).join(", ") || "none"
  })`,
  severity: "error",
  from: { path: layer.path },
  // An allow-list, so that a module outside every layer cannot be imported either.
  to: { path: "^src/", pathNot: either(LAYERS.slice(0, i + 1).map((l) => l.path)) },
}));

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "No import cycles, type-only imports included",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "driver-stands-alone",
      comment: "A driver's folder imports no other driver's folder: what drivers share lives in src/drivers/*.ts",
      severity: "error",
      from: { path: "^src/drivers/([^/]+)/" },
      to: { path: "^src/drivers/[^/]+/", pathNot: "^src/drivers/$1/" },
    },
    {
      name: "in-a-layer",
      comment: "Every module of src/ belongs to a layer: add a new folder to LAYERS in .dependency-cruiser.cjs",
      severity: "error",
      from: { path: "^src/", pathNot: either(LAYERS.map((l) => l.path)) },
      to: {},
    },
  ],
  options: {
    includeOnly: "^src/",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
