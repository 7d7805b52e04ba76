import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    alias: {
      // Tests import the package by name, as users do; it resolves to the sources.
      "effect-a2a-delegation/ai": fileURLToPath(new URL("./src/ai.ts", import.meta.url)),
      "effect-a2a-delegation/node": fileURLToPath(new URL("./src/node.ts", import.meta.url)),
      "effect-a2a-delegation/otel": fileURLToPath(new URL("./src/otel.ts", import.meta.url)),
      "effect-a2a-delegation/sql": fileURLToPath(new URL("./src/sql.ts", import.meta.url)),
      "effect-a2a-delegation/sqlite": fileURLToPath(new URL("./src/sqlite.ts", import.meta.url)),
      "effect-a2a-delegation/postgres": fileURLToPath(new URL("./src/postgres.ts", import.meta.url)),
      "effect-a2a-delegation/testing": fileURLToPath(new URL("./src/testing/index.ts", import.meta.url)),
      "effect-a2a-delegation": fileURLToPath(new URL("./src/index.ts", import.meta.url))
    }
  },
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./test/setup.ts"],
    // A throwaway PostgreSQL for the SQL tests, unless DELEGATION_TEST_DATABASE_URL names one (CI's).
    globalSetup: ["./test/globalSetup.ts"],
    testTimeout: 20_000
  }
})
