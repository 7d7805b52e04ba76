/**
 * A local platform and local A2A peers over real HTTP, for demos and for hosts'
 * integration tests. Needs `@effect/platform-node`.
 *
 * @since 0.1.0
 */

/** The control-plane platform as it behaves: registry, delegation rows, `/delegate`, A2A proxy with a heartbeat-drained queue. */
export * as LocalPlatform from "./LocalPlatform.js"
/** Scriptable A2A peers speaking 1.0, v0.3 or both, answering other versions as the SDK servers do. */
export * as LocalPeer from "./LocalPeer.js"
