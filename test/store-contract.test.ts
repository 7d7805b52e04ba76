/**
 * The `DelegationStore` contract (`test/fixtures/storeContract.ts`) on every store: SQLite (a file in a
 * temp directory per test), PostgreSQL (a database per test on the server `test/globalSetup.ts` starts)
 * and memory. Plus what only PostgreSQL has: `written`, another client's writes heard through `LISTEN`.
 *
 * A second replica is another client: on PostgreSQL its own pool; on SQLite the same store, because two
 * libSQL clients of one process on one file wait for each other's locks synchronously (the driver blocks
 * the event loop), which is why a SQLite file is for one process.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, DateTime, Effect, Fiber, Layer, Option, Schedule, Stream } from "effect"
import * as DelegationStoreMemory from "../src/layers/DelegationStoreMemory.js"
import { DelegationStoreSql } from "effect-a2a-delegation/sql"
import { DelegationStorePg as Postgres } from "effect-a2a-delegation/postgres"
import { DelegationStoreSqlite as Sqlite } from "effect-a2a-delegation/sqlite"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { Delegation, DelegationId } from "../src/services/Delegations.js"
import { DelegationStore } from "../src/services/DelegationStore.js"
import * as PgTest from "./fixtures/postgres.js"
import type { MakeStore, StoreOptions } from "./fixtures/storeContract.js"
import { Replica, storeContract } from "./fixtures/storeContract.js"

/** A fresh temp directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "delegation-store-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

/** The store with itself as its second replica (one process, one store). */
const selfReplica = <E>(layer: Layer.Layer<DelegationStore, E>): Layer.Layer<DelegationStore | Replica, E> =>
  Layer.flatMap(layer, (context) =>
    Layer.succeedContext(context.pipe(Context.add(Replica, { open: Effect.succeed(Context.get(context, DelegationStore)) }))))

const sqliteStore: MakeStore = (options: StoreOptions) =>
  Layer.unwrapScoped(
    Effect.map(tempDir, (dir) => selfReplica(Sqlite.layer({ filename: Path.join(dir, "delegations.db"), ...options })))
  )

const postgresStore: MakeStore = (options: StoreOptions) =>
  Layer.unwrapEffect(Effect.map(PgTest.PgTestDatabase, (database) =>
    Layer.merge(
      Postgres.layerFromClient(options),
      Layer.succeed(Replica, {
        open: Effect.flatMap(database.client, (client) =>
          DelegationStoreSql.make({ ...options, listen: client.listen }).pipe(
            Effect.provideService(SqlClient.SqlClient, client)
          ))
      })
    ))).pipe(Layer.provide(PgTest.layer))

const memoryStore: MakeStore = (options: StoreOptions) => selfReplica(DelegationStoreMemory.layer(options))

storeContract("SQLite", sqliteStore)
storeContract("PostgreSQL", postgresStore)
storeContract("memory", memoryStore)

describe("DelegationStoreSql on PostgreSQL", () => {
  it.scopedLive("written delivers the ids another client writes", () =>
    Effect.gen(function*() {
      const store = yield* DelegationStore
      const database = yield* PgTest.PgTestDatabase
      const sql = yield* SqlClient.SqlClient
      const other = yield* Effect.flatMap(database.client, (client) =>
        DelegationStoreSql.make({ history: 10 }).pipe(Effect.provideService(SqlClient.SqlClient, client)))
      expect(other.written).toBeUndefined()
      const written = store.written
      if (written === undefined) return yield* Effect.dieMessage("the postgres store has no written stream")
      const heard = yield* written.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
      // The listener's session has run its LISTEN (a notification sent before would not be queued for it).
      yield* sql`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = ${
        `LISTEN "${DelegationStoreSql.CHANNEL}"`
      }`.pipe(Effect.filterOrFail((rows) => rows.length > 0), Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 500 }))
      const now = yield* DateTime.now
      const delegation = new Delegation({
        id: DelegationId.make("heard-1"),
        workspaceId: "peer",
        task: "t",
        status: "pending",
        attempts: 0,
        createdAt: now,
        updatedAt: now
      })
      yield* other.create({ delegation, origin: "o", task: "t", owner: "replica-b", leaseMillis: 60_000 })
      yield* other.update("heard-1", { status: "in_progress" }, { owner: "replica-b" })
      const ids = yield* Fiber.join(heard).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "not heard" }))
      expect([...ids]).toEqual(["heard-1", "heard-1"])
      expect(Option.isSome(yield* store.get("heard-1"))).toBe(true)
    }).pipe(Effect.provide(Postgres.layerFromClient({ history: 10 }).pipe(Layer.provideMerge(PgTest.layer)))))
})
