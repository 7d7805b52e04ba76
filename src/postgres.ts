/**
 * The delegation store in PostgreSQL (needs `@effect/sql` and `@effect/sql-pg`): several replicas share it,
 * claim each other's delegations when a lease runs out, and hear each other's writes (`LISTEN`).
 * `DelegationStorePg.layer({ url, history })` is the store on a pool of its own; `layerFromClient` uses the host's `PgClient`.
 *
 * @since 0.4.0
 */

/** The store in a PostgreSQL database, as a layer. */
export * as DelegationStorePg from "./layers/DelegationStorePg.js"

/** The SQL store over any `SqlClient`, its constants and tables. */
export * as DelegationStoreSql from "./layers/DelegationStoreSql.js"
