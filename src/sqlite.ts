/**
 * The delegation store in a SQLite file (needs `@effect/sql`, `@effect/sql-libsql` and `@libsql/client`):
 * one host, delegations outliving its process. The file is opened in WAL mode, and every connection waits
 * out another's lock for `busyTimeout` instead of failing at once.
 *
 * @since 0.4.0
 */
import type { Migrator, SqlError } from "@effect/sql"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer } from "effect"
import * as DelegationStoreSql from "./layers/DelegationStoreSql.js"
import { makeFileClient } from "./layers/internal/libsql.js"
import { DelegationStore } from "./services/DelegationStore.js"

export { DelegationStoreSql }

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
 * `DelegationStore` in the SQLite file `filename`; the file is closed with the layer.
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<DelegationStore, SqlError.SqlError | Migrator.MigrationError> =>
  Layer.scoped(
    DelegationStore,
    Effect.flatMap(
      makeFileClient(options.filename, { busyTimeout: options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT }),
      (client) =>
        DelegationStoreSql.make({
          history: options.history,
          retention: options.retention,
          cap: options.cap
        }).pipe(Effect.provideService(SqlClient.SqlClient, client))
    )
  )
