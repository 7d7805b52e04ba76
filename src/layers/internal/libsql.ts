/**
 * A SQLite file through `@effect/sql-libsql`, in WAL mode and waiting out busy locks on every connection.
 *
 * WAL is a property of the file: set once, it holds for every later connection. The busy timeout is a
 * property of a connection, and the libSQL client (`@libsql/client` 0.12, file URLs) hands its connection to
 * each transaction and opens a fresh one for whatever comes next, so a `PRAGMA busy_timeout` run once is
 * gone after the first transaction (and neither the URL nor the client's config can carry it). Hence
 * `busyTimeoutClient`: it runs the pragma on each fresh connection, before that connection's first
 * statement or `BEGIN`. `LibsqlClient` serialises its calls (one permit), so nothing runs in between.
 *
 * @internal
 */
import { SqlError } from "@effect/sql"
import { LibsqlClient } from "@effect/sql-libsql"
import * as Libsql from "@libsql/client"
import { Context, Duration, Effect, Layer, type Scope } from "effect"
import { pathToFileURL } from "node:url"

/**
 * A libSQL client that sets `busy_timeout` on each connection before using it.
 *
 * @internal
 */
export const busyTimeoutClient = (sdk: Libsql.Client, busyTimeout: Duration.DurationInput): Libsql.Client => {
  const pragma = `PRAGMA busy_timeout = ${Math.round(Duration.toMillis(busyTimeout))}`
  let fresh = true
  const ready = async () => {
    if (fresh) {
      await sdk.execute(pragma)
      fresh = false
    }
  }
  return {
    execute: async (stmt) => {
      await ready()
      return sdk.execute(stmt)
    },
    batch: async (stmts, mode) => {
      await ready()
      return sdk.batch(stmts, mode)
    },
    migrate: async (stmts) => {
      await ready()
      return sdk.migrate(stmts)
    },
    transaction: async (mode?: Libsql.TransactionMode) => {
      await ready()
      const transaction = await sdk.transaction(mode)
      // The client keeps no connection now: its next call opens one.
      fresh = true
      return transaction
    },
    executeMultiple: async (sql) => {
      await ready()
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
      LibsqlClient.layer({ liveClient: busyTimeoutClient(sdk, options.busyTimeout) })
    ).pipe(Effect.map(Context.get(LibsqlClient.LibsqlClient)))
    yield* client`PRAGMA journal_mode = WAL`
    return client
  })
