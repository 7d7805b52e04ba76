/**
 * `DelegationStoreSql` in PostgreSQL through `@effect/sql-pg`: several replicas share it, claim each
 * other's delegations when a lease runs out, and hear each other's writes (`written`, over
 * `PgClient.listen`, which holds a connection of its own).
 *
 * @since 0.4.0
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import { DelegationStore, DelegationStoreError } from "../services/DelegationStore.js"
import * as DelegationStoreSql from "./DelegationStoreSql.js"

/**
 * @since 0.4.0
 * @category models
 */
export interface Options extends Omit<DelegationStoreSql.Options, "listen"> {
  /** `postgres://user:password@host:port/database`. */
  readonly url: Redacted.Redacted | string
  /** The pool's size (`@effect/sql-pg`'s default when left out). */
  readonly maxConnections?: number | undefined
}

/**
 * The store on the host's `PgClient`, its `written` stream through `PgClient.listen`. Tables that cannot be
 * migrated are `DelegationStoreError` `Unavailable` (operation `migrate`).
 *
 * @since 0.4.0
 * @category constructors
 */
export const makeFromClient = (
  options: Omit<DelegationStoreSql.Options, "listen">
): Effect.Effect<DelegationStore["Type"], DelegationStoreError, PgClient.PgClient | Scope.Scope> =>
  Effect.flatMap(PgClient.PgClient, (client) =>
    DelegationStoreSql.make({ ...options, listen: (channel) => client.listen(channel) }).pipe(
      Effect.provideService(SqlClient.SqlClient, client)
    )).pipe(Effect.mapError(DelegationStoreSql.openError))

/**
 * `DelegationStore` on the host's `PgClient`.
 *
 * @since 0.4.0
 * @category layers
 */
export const layerFromClient = (
  options: Omit<DelegationStoreSql.Options, "listen">
): Layer.Layer<DelegationStore, DelegationStoreError, PgClient.PgClient> =>
  Layer.scoped(DelegationStore, makeFromClient(options))

/**
 * `DelegationStore` on a pool of its own to `url`, closed with the layer. A database that cannot be reached
 * is `DelegationStoreError` `Unavailable` (operation `open`).
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<DelegationStore, DelegationStoreError> =>
  layerFromClient({ history: options.history, retention: options.retention, cap: options.cap }).pipe(
    Layer.provide(
      PgClient.layer({
        url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections })
      }).pipe(Layer.mapError(DelegationStoreSql.openError))
    )
  )
