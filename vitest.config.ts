import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Test files start real peers (SMTP, OAuth, PostgreSQL databases); two at a time fits 2 cores.
    pool: "forks",
    maxWorkers: 2,
    // The JSON report is what .ci/run reads for its closing "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".vitest-report.json" }]],
    projects: [
      {
        extends: true,
        test: { name: "server", include: ["test/**/*.test.ts", "src/**/*.test.ts"], exclude: ["test/e2e/**"] },
      },
      // The browser tests run after the rest, among themselves: their waits are for a page
      // on a machine not also busy with PostgreSQL drills.
      { extends: true, test: { name: "browser", include: ["test/e2e/**/*.test.ts"], sequence: { groupOrder: 1 } } },
    ],
  },
});
