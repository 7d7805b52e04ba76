/**
 * `DelegationStoreSql` in a SQLite file through `@effect/sql-libsql` (one host: delegations outlive its
 * process). The file is opened in WAL mode, and every connection waits out another's lock for
 * `busyTimeout` instead of failing at once (the libSQL client loses that setting after each transaction:
 * `internal/libsql.ts` sets it again on each fresh connection). One process per file: two clients of one
 * process on one file wait for each other synchronously.
 *
 * @since 0.4.0
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { DelegationStore, DelegationStoreError } from "../services/DelegationStore.js"
import * as DelegationStoreSql from "./DelegationStoreSql.js"
import { makeFileClient } from "./internal/libsql.js"

/**
 * @since 0.4.0
 * @category models
 */
export interface Options extends Omit<DelegationStoreSql.Options, "listen"> {
  /** The database file (created when missing). */
  readonly filename: string
  /** How long a write waits for another connection's (another process's) lock before failing (5 seconds). */
  readonly busyTimeout?: Duration.DurationInput | undefined
}

/**
 * Default `busyTimeout`.
 *
 * @since 0.4.0
 * @category constants
 */
export const DEFAULT_BUSY_TIMEOUT: Duration.Duration = Duration.seconds(5)

/**
 * Opens the file (closed with the scope), migrates it, and returns the store. A file that cannot be opened
 * or migrated is `DelegationStoreError` `Unavailable` (operation `open` or `migrate`).
 *
 * @since 0.4.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<DelegationStore["Type"], DelegationStoreError, Scope.Scope> =>
  Effect.flatMap(
    makeFileClient(options.filename, { busyTimeout: options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT }),
    (client) =>
      DelegationStoreSql.make({ history: options.history, retention: options.retention, cap: options.cap }).pipe(
        Effect.provideService(SqlClient.SqlClient, client)
      )
  ).pipe(Effect.mapError(DelegationStoreSql.openError))

/**
 * `DelegationStore` in the SQLite file `filename`; the file is closed with the layer.
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<DelegationStore, DelegationStoreError> =>
  Layer.scoped(DelegationStore, make(options))
