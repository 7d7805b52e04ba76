/**
 * What the durable delegation stores will rely on, shown on the real engines through `SqlClient`
 * (`@effect/sql` 0.52): PostgreSQL through `@effect/sql-pg` (a server from `test/globalSetup.ts`, a fresh
 * database per test) and SQLite through `@effect/sql-libsql` (a file in a temp directory).
 *
 * One migration for both. On PostgreSQL: two replicas claiming expired leases with `FOR UPDATE SKIP LOCKED`
 * claim each row once; a unique index fails with a typed `SqlError`; `PgClient.listen` hears another
 * client's `pg_notify` (`PgClient.notify` itself is broken in 0.53.0). On SQLite: WAL and a busy timeout
 * that hold across transactions (the timeout really waits out another process's lock), fenced updates,
 * and a file that outlives its client.
 */
import { Migrator, SqlClient, SqlError } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Fiber, Layer, Option, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as PgTest from "./fixtures/postgres.js"
import * as SqliteTest from "./fixtures/sqlite.js"

/** A lease per delegation, as the store will keep it: owner, lease end (the database's clock on PostgreSQL), revision. */
const migrations = Migrator.fromRecord({
  "1_create_leases": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const time = sql.onDialectOrElse({ pg: () => sql.literal("TIMESTAMPTZ"), orElse: () => sql.literal("INTEGER") })
    yield* sql`CREATE TABLE leases (
      id INTEGER PRIMARY KEY,
      delegation_id TEXT NOT NULL,
      owner TEXT,
      lease_until ${time} NOT NULL,
      revision INTEGER NOT NULL DEFAULT 0
    )`
    yield* sql`CREATE UNIQUE INDEX leases_delegation_id ON leases (delegation_id)`
  })
})

/** `@effect/sql`'s own migrator: no `pg_dump`, no file system, one code path for both engines. */
const migrate = Migrator.make({})({ loader: migrations })

const expectMigrations = Effect.gen(function*() {
  expect(yield* migrate).toEqual([[1, "create_leases"]])
  // Applied migrations are recorded: a second run (another replica starting) does nothing.
  expect(yield* migrate).toEqual([])
})

describe("PostgreSQL through @effect/sql-pg", () => {
  it.live("a migration creates the table once", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* expectMigrations
      expect(yield* sql`SELECT count(*)::int AS n FROM leases`).toEqual([{ n: 0 }])
    }).pipe(Effect.provide(PgTest.layer)))

  it.scopedLive("two replicas claiming expired leases with SKIP LOCKED claim disjoint rows, all 200 together", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const database = yield* PgTest.PgTestDatabase
      yield* migrate
      yield* sql`INSERT INTO leases (id, delegation_id, owner, lease_until)
        SELECT i, 'd-' || i, 'gone', now() - interval '1 minute' FROM generate_series(1, 200) AS i`

      /** One reconciler batch: up to 10 expired rows, skipping rows another replica holds; the locks held a little. */
      const claim = (replica: SqlClient.SqlClient, me: string) =>
        replica.withTransaction(Effect.gen(function*() {
          const rows = yield* replica<{ readonly id: number }>`UPDATE leases
            SET owner = ${me}, lease_until = now() + interval '30 seconds', revision = revision + 1
            WHERE id IN (SELECT id FROM leases WHERE lease_until < now() ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED)
            RETURNING id`
          yield* Effect.sleep("5 millis")
          return rows.map((row) => row.id)
        }))
      /** Batches until none is left to this replica. */
      const reconcile = (replica: SqlClient.SqlClient, me: string): Effect.Effect<ReadonlyArray<number>, SqlError.SqlError> =>
        Effect.flatMap(claim(replica, me), (ids) =>
          ids.length === 0 ? Effect.succeed(ids) : Effect.map(reconcile(replica, me), (more) => [...ids, ...more]))

      const other = yield* database.client
      const [a, b] = yield* Effect.all([reconcile(sql, "replica-a"), reconcile(other, "replica-b")], {
        concurrency: "unbounded"
      })
      expect(a.length).toBeGreaterThan(0)
      expect(b.length).toBeGreaterThan(0)
      expect(a.filter((id) => b.includes(id))).toEqual([])
      expect([...a, ...b].sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
      // Each row was claimed exactly once, by the replica that returned it.
      expect(yield* sql`SELECT owner, count(*)::int AS n, max(revision) AS revision FROM leases GROUP BY owner ORDER BY owner`)
        .toEqual([{ owner: "replica-a", n: a.length, revision: 1 }, { owner: "replica-b", n: b.length, revision: 1 }])
    }).pipe(Effect.provide(PgTest.layer)))

  it.live("a unique index rejects a duplicate with a typed SqlError", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* migrate
      const insert = sql`INSERT INTO leases (id, delegation_id, lease_until) VALUES (${1}, ${"d-1"}, now())`
      yield* insert
      const duplicate = sql`INSERT INTO leases (id, delegation_id, lease_until) VALUES (${2}, ${"d-1"}, now())`
      const error = yield* Effect.flip(duplicate)
      expect(error).toBeInstanceOf(SqlError.SqlError)
      expect(error._tag).toBe("SqlError")
      // The driver's error is the cause: 23505 is PostgreSQL's unique_violation.
      expect(error.cause).toMatchObject({ code: "23505", constraint: "leases_delegation_id" })
    }).pipe(Effect.provide(PgTest.layer)))

  it.scopedLive("LISTEN/NOTIFY: PgClient.listen hears another client's pg_notify within a second", () =>
    Effect.gen(function*() {
      const listener = yield* PgClient.PgClient
      const notifier = yield* Effect.flatMap(PgTest.PgTestDatabase, (database) => database.client)
      const channel = "delegation_events"
      const received = yield* listener.listen(channel).pipe(Stream.runHead, Effect.fork)
      // The listener's session has run its LISTEN (a notification sent before would not be queued for it).
      yield* notifier`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = ${`LISTEN "${channel}"`}`
        .pipe(
          Effect.filterOrFail((rows) => rows.length > 0),
          Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 500 })
        )
      // PgClient.notify in @effect/sql-pg 0.53.0 sends `NOTIFY channel, $1`, which PostgreSQL cannot parse (NOTIFY
      // takes no parameters; fixed upstream on Effect 4 only, Effect-TS/effect-smol#1835): use pg_notify.
      const broken = yield* Effect.flip(notifier.notify(channel, "d-1"))
      expect(broken.cause).toMatchObject({ code: "42601" })
      const [elapsed, payload] = yield* notifier`SELECT pg_notify(${channel}, ${"d-1"})`.pipe(
        Effect.zipRight(Fiber.join(received)),
        Effect.timeoutFail({ duration: "1 second", onTimeout: () => "no notification within a second" }),
        Effect.timed
      )
      expect(payload).toEqual(Option.some("d-1"))
      expect(Duration.toMillis(elapsed)).toBeLessThan(1_000)
    }).pipe(Effect.provide(PgTest.layer)))
})

/** A fresh temp directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "delegation-sqlite-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

const BUSY_TIMEOUT = Duration.seconds(2)

/** Another process holding `file`'s write lock (BEGIN IMMEDIATE) for `hold`; waits for it to exit with the scope. */
const holdWriteLock = (file: string, hold: Duration.DurationInput) =>
  Effect.acquireRelease(
    Effect.async<ReturnType<typeof spawn>>((resume) => {
      const script = `import { createClient } from "@libsql/client"
const client = createClient({ url: process.argv[1] })
const tx = await client.transaction("write")
console.log("locked")
setTimeout(async () => { await tx.commit(); client.close() }, Number(process.argv[2]))`
      const child = spawn(
        process.execPath,
        ["--input-type=module", "-e", script, pathToFileURL(file).href, String(Duration.toMillis(hold))],
        { cwd: fileURLToPath(new URL("..", import.meta.url)), stdio: ["ignore", "pipe", "inherit"] }
      )
      child.stdout!.once("data", () => resume(Effect.succeed(child)))
      child.once("error", (error) => resume(Effect.die(error)))
    }),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null) resume(Effect.void)
        else child.once("exit", () => resume(Effect.void))
      })
  )

describe("SQLite through @effect/sql-libsql", () => {
  it.scoped("the migration, WAL and the busy timeout hold across transactions; fenced updates and claims", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const sql = yield* SqliteTest.makeFileClient(Path.join(dir, "delegations.db"), { busyTimeout: BUSY_TIMEOUT })
      yield* expectMigrations.pipe(Effect.provideService(SqlClient.SqlClient, sql))

      const pragmas = Effect.all({
        journal: sql<{ readonly journal_mode: string }>`PRAGMA journal_mode`,
        timeout: sql<{ readonly timeout: number }>`PRAGMA busy_timeout`
      })
      const expected = { journal: [{ journal_mode: "wal" }], timeout: [{ timeout: 2_000 }] }
      // Each transaction takes the client's connection and the next statement opens a new one: check both, thrice.
      for (let i = 0; i < 3; i++) {
        expect(yield* sql.withTransaction(pragmas)).toEqual(expected)
        expect(yield* pragmas).toEqual(expected)
      }

      yield* sql.withTransaction(
        sql`INSERT INTO leases ${sql.insert([1, 2, 3].map((id) => ({ id, delegation_id: `d-${id}`, owner: "gone", lease_until: 0 })))}`
      )
      // A fenced write: only the owner at the revision it read changes the row, and learns whether it did.
      const renew = (owner: string, revision: number) =>
        sql<{ readonly revision: number }>`UPDATE leases SET lease_until = ${5_000}, revision = revision + 1
          WHERE id = ${1} AND owner = ${owner} AND revision = ${revision} RETURNING revision`
      expect(yield* renew("gone", 0)).toEqual([{ revision: 1 }])
      expect(yield* renew("gone", 0)).toEqual([])
      expect(yield* renew("someone-else", 1)).toEqual([])
      // Writers are serialised on SQLite: the claim is the PostgreSQL one without SKIP LOCKED.
      const claimed = yield* sql<{ readonly id: number }>`UPDATE leases SET owner = ${"me"}, lease_until = ${9_000}, revision = revision + 1
        WHERE id IN (SELECT id FROM leases WHERE lease_until < ${1_000} ORDER BY id LIMIT 10) RETURNING id`
      expect(claimed.map((row) => row.id).sort()).toEqual([2, 3])
      expect(yield* sql`SELECT id, owner, lease_until, revision FROM leases ORDER BY id`).toEqual([
        { id: 1, owner: "gone", lease_until: 5_000, revision: 1 },
        { id: 2, owner: "me", lease_until: 9_000, revision: 1 },
        { id: 3, owner: "me", lease_until: 9_000, revision: 1 }
      ])
      const duplicate = yield* Effect.flip(sql`INSERT INTO leases (id, delegation_id, lease_until) VALUES (${4}, ${"d-1"}, ${0})`)
      expect(duplicate).toBeInstanceOf(SqlError.SqlError)
      expect(duplicate.cause).toMatchObject({ code: "SQLITE_CONSTRAINT_UNIQUE" })
    }))

  it.scopedLive("the busy timeout waits out another process's write lock; without it, SQLITE_BUSY at once", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "delegations.db")
      const sql = yield* SqliteTest.makeFileClient(file, { busyTimeout: BUSY_TIMEOUT })
      yield* migrate.pipe(Effect.provideService(SqlClient.SqlClient, sql))
      yield* sql.withTransaction(sql`SELECT 1`) // the connection the next transaction uses is a fresh one
      const plain = yield* Layer.build(LibsqlClient.layer({ url: pathToFileURL(file).href })).pipe(
        Effect.map(Context.get(LibsqlClient.LibsqlClient))
      )

      yield* holdWriteLock(file, "400 millis")
      const busy = yield* Effect.flip(plain.withTransaction(plain`SELECT 1`))
      expect(busy).toBeInstanceOf(SqlError.SqlError)
      expect(busy.cause).toMatchObject({ code: "SQLITE_BUSY" })
      // The wait blocks this process's event loop (the driver is synchronous): fine for one writer per process.
      const [waited] = yield* Effect.timed(
        sql.withTransaction(sql`INSERT INTO leases (id, delegation_id, lease_until) VALUES (${1}, ${"d-1"}, ${0})`)
      )
      expect(Duration.toMillis(waited)).toBeGreaterThan(100)
      expect(yield* sql`SELECT delegation_id FROM leases`).toEqual([{ delegation_id: "d-1" }])
    }))

  it.scoped("the file outlives its client: closed, reopened, the data and WAL mode are still there", () =>
    Effect.gen(function*() {
      const file = Path.join(yield* tempDir, "delegations.db")
      yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqliteTest.makeFileClient(file, { busyTimeout: BUSY_TIMEOUT })
        yield* migrate.pipe(Effect.provideService(SqlClient.SqlClient, sql))
        yield* sql`INSERT INTO leases (id, delegation_id, owner, lease_until) VALUES (${1}, ${"d-1"}, ${"a"}, ${42})`
      }))
      const reopened = Layer.build(LibsqlClient.layer({ url: pathToFileURL(file).href })).pipe(
        Effect.map(Context.get(LibsqlClient.LibsqlClient))
      )
      const sql = yield* reopened
      expect(yield* sql`SELECT id, delegation_id, owner, lease_until, revision FROM leases`).toEqual([
        { id: 1, delegation_id: "d-1", owner: "a", lease_until: 42, revision: 0 }
      ])
      expect(yield* sql`PRAGMA journal_mode`).toEqual([{ journal_mode: "wal" }])
      expect(yield* migrate.pipe(Effect.provideService(SqlClient.SqlClient, sql))).toEqual([])
    }))

  it.scoped("the pitfall the busy-timeout client exists for: a pragma set once is gone after a transaction", () =>
    Effect.gen(function*() {
      const file = Path.join(yield* tempDir, "delegations.db")
      const sql = yield* Layer.build(LibsqlClient.layer({ url: pathToFileURL(file).href })).pipe(
        Effect.map(Context.get(LibsqlClient.LibsqlClient))
      )
      yield* sql`PRAGMA busy_timeout = 2000`
      expect(yield* sql`PRAGMA busy_timeout`).toEqual([{ timeout: 2_000 }])
      yield* sql.withTransaction(sql`SELECT 1`)
      expect(yield* sql`PRAGMA busy_timeout`).toEqual([{ timeout: 0 }])
    }))
})
