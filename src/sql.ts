/**
 * The SQL delegation store over the host's `@effect/sql` `SqlClient`: SQLite or PostgreSQL, whichever
 * client the host provides (needs `@effect/sql`; the driver is the host's). `effect-a2a-delegation/sqlite`
 * and `effect-a2a-delegation/postgres` build the client too.
 *
 * @since 0.4.0
 */

/** `DelegationStore` in SQL tables of its own, migrated on start; every replica on one database shares it. */
export * as DelegationStoreSql from "./layers/DelegationStoreSql.js"
