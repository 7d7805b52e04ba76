/**
 * PostgreSQL for the tests that need one (the SQL engines now, the durable stores next).
 *
 * `DELEGATION_TEST_DATABASE_URL`, when set (CI starts its own server and sets it), is used as is. Otherwise
 * this starts a throwaway server of its own, as `.ci/run` does: `initdb` in a fresh temp directory (as the
 * `postgres` OS user when running as root: initdb refuses root), on a free 127.0.0.1 port, `fsync` off,
 * trust auth; stopped and removed in teardown. It never uses a server it did not start. The URL reaches
 * the test files through `provide`/`inject` (`test/fixtures/postgres.ts` reads it).
 */
import { execFile } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** A PostgreSQL server URL (the `postgres` database, superuser), for tests to create their databases on. */
    readonly delegationTestDatabaseUrl: string
  }
}

const run = (command: string, args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile(command, args, (error, stdout, stderr) =>
      error === null
        ? resolve(stdout.trim())
        : reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`)))
  )

const exists = (path: string) => Fs.access(path).then(() => true, () => false)

/** The directory of `initdb` and `pg_ctl`: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest). */
const findBinaries = async (): Promise<string | undefined> => {
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) {
    if (dir !== "" && await exists(Path.join(dir, "initdb")) && await exists(Path.join(dir, "pg_ctl"))) return dir
  }
  const versions = await Fs.readdir("/usr/lib/postgresql").catch(() => [])
  for (const version of versions.sort((a, b) => Number(b) - Number(a))) {
    const dir = Path.join("/usr/lib/postgresql", version, "bin")
    if (await exists(Path.join(dir, "initdb"))) return dir
  }
  return undefined
}

/** A port nothing listens on now (the OS picks it; a tiny window remains before the server binds it). */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const startServer = async () => {
  const bin = await findBinaries()
  if (bin === undefined) {
    throw new Error(
      "PostgreSQL is not installed, and the SQL tests need it: install it (Debian/Ubuntu: `apt-get install postgresql`; " +
        "its initdb and pg_ctl are found on PATH or in /usr/lib/postgresql/<version>/bin), " +
        "or set DELEGATION_TEST_DATABASE_URL to a server the tests may create and drop databases on."
    )
  }
  const root = process.getuid?.() === 0
  /** initdb refuses to run as root: run the server's commands as the `postgres` OS user, in a directory it owns. */
  const asServer = (command: string, args: ReadonlyArray<string>) =>
    root ? run("runuser", ["-u", "postgres", "--", command, ...args]) : run(command, args)
  const dir = root
    ? await run("runuser", ["-u", "postgres", "--", "mktemp", "-d", Path.join(Os.tmpdir(), "delegation-pg-XXXXXX")])
    : await Fs.mkdtemp(Path.join(Os.tmpdir(), "delegation-pg-"))
  const data = Path.join(dir, "data")
  const stop = async () => {
    await asServer(Path.join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "stop"]).catch(() => undefined)
    await Fs.rm(dir, { recursive: true, force: true })
  }
  try {
    const port = await freePort()
    await asServer(Path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
    // -l: the server's output goes to a file, not to a pipe this process would wait on; -w: return once it accepts connections.
    await asServer(Path.join(bin, "pg_ctl"), [
      "-D", data, "-l", Path.join(dir, "server.log"), "-w",
      "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"
    ]).catch(async (error: Error) => {
      const log = await Fs.readFile(Path.join(dir, "server.log"), "utf8").catch(() => "")
      throw new Error(`${error.message}\n${log}`)
    })
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop }
  } catch (error) {
    await stop()
    throw error
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
