/**
 * The delegation tools as an `@effect/ai` toolkit (needs `@effect/ai`).
 *
 * @since 0.1.0
 */

/** The tools, their result schemas and `DelegationToolkit`. */
export * from "./services/DelegationTools.js"

/** `DelegationToolkitLive.layer`: the handlers over `Delegations`. */
export * as DelegationToolkitLive from "./layers/DelegationToolkitLive.js"
