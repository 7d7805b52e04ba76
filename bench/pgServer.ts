/**
 * PostgreSQL for the bench's `library-postgres` side and its store operations: the server named by
 * `BENCH_DATABASE_URL` (or `DELEGATION_TEST_DATABASE_URL`) when set, else a throwaway server of the
 * bench's own, started as the tests start theirs (`test/fixtures/pgServer.ts` calls `startThrowaway` here:
 * bench/ compiles on its own, so the shared code lives on this side): `initdb` in a fresh temp directory (as the `postgres` OS user when running
 * as root: initdb refuses root), on a free 127.0.0.1 port, `fsync=off`, trust auth; stopped and removed
 * at the end of the run. Each round and the store operations get a database of their own
 * (`freshDatabase`), dropped after.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Effect, Layer, Redacted } from "effect"
import { execFile } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

const run = (command: string, args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile(command, args, (error, stdout, stderr) =>
      error === null
        ? resolve(stdout.trim())
        : reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`)))
  )

const exists = (path: string) => Fs.access(path).then(() => true, () => false)

/** The directory of `initdb` and `pg_ctl`: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest). */
export const findBinaries = async (): Promise<string | undefined> => {
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

/** A server to create databases on: its URL (the `postgres` database, a superuser), and `stop`. */
export interface PgServer {
  readonly url: string
  /** Where it comes from, for the report. */
  readonly origin: string
  readonly stop: () => Promise<void>
}

/**
 * A throwaway server from the binaries in `bin`, its files in a temp directory named from `prefix`: `stop`
 * stops it and removes its files; `pause`/`resume` stop and start it on the same data and port (a database
 * outage, for the tests).
 */
export const startThrowaway = async (bin: string, prefix: string) => {
  const root = process.getuid?.() === 0
  // initdb refuses to run as root: run the server's commands as the `postgres` OS user, in a directory it owns.
  const asServer = (command: string, args: ReadonlyArray<string>) =>
    root ? run("runuser", ["-u", "postgres", "--", command, ...args]) : run(command, args)
  const dir = root
    ? await run("runuser", ["-u", "postgres", "--", "mktemp", "-d", Path.join(Os.tmpdir(), `${prefix}XXXXXX`)])
    : await Fs.mkdtemp(Path.join(Os.tmpdir(), prefix))
  const data = Path.join(dir, "data")
  const pause = () => asServer(Path.join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "stop"]).then(() => undefined)
  const stop = async () => {
    await pause().catch(() => undefined)
    await Fs.rm(dir, { recursive: true, force: true })
  }
  try {
    const port = await freePort()
    await asServer(Path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
    // -l: the server's output goes to a file, not to a pipe this process would wait on; -w: return once it accepts connections.
    const resume = () =>
      asServer(Path.join(bin, "pg_ctl"), [
        "-D", data, "-l", Path.join(dir, "server.log"), "-w",
        "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"
      ]).then(() => undefined, async (error: Error) => {
        const log = await Fs.readFile(Path.join(dir, "server.log"), "utf8").catch(() => "")
        throw new Error(`${error.message}\n${log}`)
      })
    await resume()
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop, pause, resume }
  } catch (error) {
    await stop()
    throw error
  }
}

/** The environment's server URL, if any. */
export const givenUrl = () => {
  for (const name of ["BENCH_DATABASE_URL", "DELEGATION_TEST_DATABASE_URL"]) {
    const value = process.env[name]
    if (value !== undefined && value !== "") return { name, value }
  }
  return undefined
}

/**
 * The server to use: the environment's, else a throwaway one; a string saying why there is none (no
 * PostgreSQL binaries, or the server did not start) instead of failing.
 */
export const pgServer = async (): Promise<PgServer | string> => {
  const given = givenUrl()
  if (given !== undefined) return { url: given.value, origin: `${given.name}`, stop: () => Promise.resolve() }
  const bin = await findBinaries()
  if (bin === undefined) {
    return "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/<version>/bin) " +
      "and neither BENCH_DATABASE_URL nor DELEGATION_TEST_DATABASE_URL is set"
  }
  const started = startThrowaway(bin, "delegation-bench-pg-").then(async ({ stop, url }): Promise<PgServer> => {
    const version = await run(Path.join(bin, "pg_ctl"), ["--version"]).catch(() => "PostgreSQL")
    const named = version.replace(/^pg_ctl \(PostgreSQL\) /, "PostgreSQL ")
    return { url, origin: `a throwaway server of the bench's own (${named}, fsync=off)`, stop }
  })
  return started.catch((error: unknown) =>
    `the bench's PostgreSQL server did not start: ${error instanceof Error ? error.message : String(error)}`
  )
}

/**
 * A fresh database on the server at `serverUrl` (CREATE DATABASE, a random name): its URL, and `drop`
 * (WITH (FORCE): a straggling connection too).
 */
export const freshDatabase = async (serverUrl: string) => {
  const admin = (statement: (sql: PgClient.PgClient) => Effect.Effect<unknown, unknown>) =>
    Effect.runPromise(
      Effect.flatMap(Layer.build(PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })), (context) =>
        statement(Context.get(context, PgClient.PgClient))).pipe(Effect.scoped, Effect.orDie)
    )
  const name = `delegation_bench_${randomUUID().replaceAll("-", "")}`
  await admin((sql) => sql`CREATE DATABASE ${sql(name)}`)
  return {
    url: Object.assign(new URL(serverUrl), { pathname: `/${name}` }).href,
    drop: () => admin((sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`).then(() => undefined)
  }
}
