/**
 * A SQLite file through `@effect/sql-libsql`, in WAL mode, waiting out busy locks, on one connection.
 *
 * The libSQL client (`@libsql/client` 0.12, file URLs) hands its connection to each transaction and opens
 * a fresh one for whatever comes next; the one handed over is never closed (its `close` only rolls
 * back), so every transaction leaves an open file descriptor until garbage collection. At thousands of
 * delegations a second that exhausts the process's descriptors and the store stalls (measured by
 * `npm run bench`: at N = 10,000 the SQLite side stopped with 20,000 descriptors open). A fresh connection
 * also loses the busy timeout, a property of a connection. `singleConnectionClient` keeps the client's one
 * connection: a transaction is begun and ended on it. That is safe because `LibsqlClient` runs one call
 * at a time (one permit, held for a whole transaction), so no statement of another fiber can run inside
 * one.
 *
 * @internal
 */
import { SqlError } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import * as Libsql from "@libsql/client"
import { Context, Duration, Effect, Layer, type Scope } from "effect"
import { pathToFileURL } from "node:url"

const BEGIN: Record<Libsql.TransactionMode, string> = {
  write: "BEGIN IMMEDIATE",
  read: "BEGIN TRANSACTION READONLY",
  deferred: "BEGIN DEFERRED"
}

/**
 * A libSQL client whose transactions run on its own connection, with `busy_timeout` set on it first.
 *
 * @internal
 */
export const singleConnectionClient = (sdk: Libsql.Client, busyTimeout: Duration.DurationInput): Libsql.Client => {
  const pragma = `PRAGMA busy_timeout = ${Math.round(Duration.toMillis(busyTimeout))}`
  let ready: Promise<unknown> | undefined
  const connected = () => (ready ??= sdk.execute(pragma))
  const execute = async (stmt: Libsql.InStatement) => {
    await connected()
    return sdk.execute(stmt)
  }
  const transaction = async (mode: Libsql.TransactionMode = "write"): Promise<Libsql.Transaction> => {
    await execute(BEGIN[mode])
    let open = true
    const end = async (statement: "COMMIT" | "ROLLBACK") => {
      if (!open) return
      open = false
      await sdk.execute(statement)
    }
    return {
      execute: (stmt) => open ? sdk.execute(stmt) : Promise.reject(new Error("the transaction is closed")),
      batch: async (stmts) => {
        const results: Array<Libsql.ResultSet> = []
        for (const stmt of stmts) results.push(await sdk.execute(stmt))
        return results
      },
      // Not used by `LibsqlClient`; the client's own runs (and rolls back) outside a transaction.
      executeMultiple: () => Promise.reject(new Error("executeMultiple is not supported inside a transaction")),
      commit: () => end("COMMIT"),
      rollback: () => end("ROLLBACK"),
      close: () => {
        if (open) void end("ROLLBACK").catch(() => undefined)
      },
      get closed() {
        return !open
      }
    }
  }
  return {
    execute: (stmt: Libsql.InStatement | string, args?: Libsql.InArgs) =>
      execute(typeof stmt === "string" ? { sql: stmt, args: args ?? [] } : stmt),
    batch: async (stmts, mode) => {
      await connected()
      return sdk.batch(stmts, mode)
    },
    migrate: async (stmts) => {
      await connected()
      return sdk.migrate(stmts)
    },
    transaction,
    executeMultiple: async (sql) => {
      await connected()
      return sdk.executeMultiple(sql)
    },
    sync: () => sdk.sync(),
    close: () => sdk.close(),
    get closed() {
      return sdk.closed
    },
    protocol: sdk.protocol
  }
}

/**
 * How to open a SQLite file.
 *
 * @internal
 */
export interface FileOptions {
  /** How long a statement waits for another connection's (another process's) lock before SQLITE_BUSY. */
  readonly busyTimeout: Duration.DurationInput
}

/**
 * A `LibsqlClient` on `file`, WAL mode, `busyTimeout` on every connection; closed with the scope.
 *
 * @internal
 */
export const makeFileClient = (
  file: string,
  options: FileOptions
): Effect.Effect<LibsqlClient.LibsqlClient, SqlError.SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const sdk = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Libsql.createClient({ url: pathToFileURL(file).href }),
        catch: (cause) => new SqlError.SqlError({ cause, message: `Failed to open ${file}` })
      }),
      (sdk) => Effect.sync(() => sdk.close())
    )
    const client = yield* Layer.build(
      LibsqlClient.layer({ liveClient: singleConnectionClient(sdk, options.busyTimeout) })
    ).pipe(Effect.map(Context.get(LibsqlClient.LibsqlClient)))
    yield* client`PRAGMA journal_mode = WAL`
    return client
  })
