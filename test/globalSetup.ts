/**
 * PostgreSQL for the tests that need one (the SQL engines now, the durable stores next).
 *
 * `DELEGATION_TEST_DATABASE_URL`, when set (CI starts its own server and sets it), is used as is. Otherwise
 * this starts a throwaway server of its own, as `.ci/run` does: `initdb` in a fresh temp directory (as the
 * `postgres` OS user when running as root: initdb refuses root), on a free 127.0.0.1 port, `fsync` off,
 * trust auth; stopped and removed in teardown. It never uses a server it did not start. The URL reaches
 * the test files through `provide`/`inject` (`test/fixtures/postgres.ts` reads it).
 */
import type { TestProject } from "vitest/node"
import { startServer } from "./fixtures/pgServer.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** A PostgreSQL server URL (the `postgres` database, superuser), for tests to create their databases on. */
    readonly delegationTestDatabaseUrl: string
  }
}

export default async function setup(project: TestProject) {
  const given = process.env.DELEGATION_TEST_DATABASE_URL
  if (given !== undefined && given !== "") {
    project.provide("delegationTestDatabaseUrl", given)
    return
  }
  const server = await startServer()
  project.provide("delegationTestDatabaseUrl", server.url)
  return server.stop
}
