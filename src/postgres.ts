/**
 * The delegation store in PostgreSQL (needs `@effect/sql` and `@effect/sql-pg`): several replicas share
 * it, claim each other's delegations when a lease runs out, and hear each other's writes (`LISTEN`).
 *
 * @since 0.4.0
 */
import type { Migrator, SqlError } from "@effect/sql"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import * as DelegationStoreSql from "./layers/DelegationStoreSql.js"
import { DelegationStore } from "./services/DelegationStore.js"

export { DelegationStoreSql }

/**
 * @since 0.4.0
 * @category models
 */
export interface Options extends Omit<DelegationStoreSql.Options, "listen"> {
  /** `postgres://user:password@host:port/database`. */
  readonly url: Redacted.Redacted | string
  /** The pool's size (`@effect/sql-pg`'s default when left out); `LISTEN` holds a connection of its own. */
  readonly maxConnections?: number | undefined
}

/**
 * `DelegationStore` on the host's `PgClient`, its `written` stream through `PgClient.listen`.
 *
 * @since 0.4.0
 * @category layers
 */
export const layerFromClient = (
  options: Omit<DelegationStoreSql.Options, "listen">
): Layer.Layer<DelegationStore, SqlError.SqlError | Migrator.MigrationError, PgClient.PgClient> =>
  Layer.scoped(
    DelegationStore,
    Effect.flatMap(PgClient.PgClient, (client) =>
      DelegationStoreSql.make({ ...options, listen: (channel) => client.listen(channel) }).pipe(
        Effect.provideService(SqlClient.SqlClient, client)
      ))
  )

/**
 * `DelegationStore` on a pool of its own to `url`, closed with the layer.
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<DelegationStore, SqlError.SqlError | Migrator.MigrationError> =>
  layerFromClient({ history: options.history, retention: options.retention, cap: options.cap }).pipe(
    Layer.provide(
      PgClient.layer({
        url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
      })
    )
  )
