/**
 * The delegation store in a SQLite file (needs `@effect/sql`, `@effect/sql-libsql` and `@libsql/client`):
 * one host, delegations outliving its process. `DelegationStoreSqlite.layer({ filename, history })` is the store.
 *
 * @since 0.4.0
 */

/** The store in a SQLite file, as a layer. */
export * as DelegationStoreSqlite from "./layers/DelegationStoreSqlite.js"

/** The SQL store over any `SqlClient`, its constants and tables. */
export * as DelegationStoreSql from "./layers/DelegationStoreSql.js"
