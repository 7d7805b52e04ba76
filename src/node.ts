/**
 * Node convenience layers (needs `@effect/platform-node`).
 *
 * @since 0.1.0
 */

/** An undici `HttpClient` with a bounded connection pool: the recommended client for Node hosts. */
export * as NodeHttpClientPooled from "./layers/NodeHttpClientPooled.js"
