/**
 * effect-a2a-delegation: non-blocking A2A delegation for Effect.
 *
 * @since 0.1.0
 */
import * as DelegationsLayer from "./layers/DelegationsLive.js"

export * from "./services/A2ATransport.js"
export * from "./services/Audit.js"
export * from "./services/Delegations.js"
export * from "./services/Discovery.js"
export * from "./services/PlatformMirror.js"
export * from "./services/Rbac.js"

/** A2A wire schemas (1.0 and v0.3), version constants and helpers. */
export * as A2A from "./services/A2A.js"
/** The per-peer A2A version choice (`A2A_PROTOCOL`), for hosts writing their own transport. */
export * as ProtocolChoice from "./programs/protocol.js"

/** Live A2A transport over the host's `HttpClient`. */
export * as A2ATransportHttp from "./layers/A2ATransportHttp.js"
/** Scriptable in-memory A2A peer for tests. */
export * as A2ATransportTest from "./layers/A2ATransportTest.js"
/** Audit sink that appends JSON lines to a file (`AUDIT_LOG_PATH`). */
export * as AuditFile from "./layers/AuditFile.js"
/** Audit sink that writes Effect log lines. */
export * as AuditLog from "./layers/AuditLog.js"
/** In-memory audit sink for tests. */
export * as AuditMemory from "./layers/AuditMemory.js"
/** Live discovery through the platform registry. */
export * as DiscoveryHttp from "./layers/DiscoveryHttp.js"
/** Per-request timeouts a client can enforce natively (`NativeRequestTimeout`). */
export * as RequestTimeout from "./layers/RequestTimeout.js"
/** Discovery for proxy dispatch: every peer through the platform's A2A proxy. */
export * as DiscoveryProxy from "./layers/DiscoveryProxy.js"
/** Fixed-map discovery for tests. */
export * as DiscoveryTest from "./layers/DiscoveryTest.js"
/** Live platform mirror over HTTP. */
export * as PlatformMirrorHttp from "./layers/PlatformMirrorHttp.js"
/** In-memory platform mirror for tests. */
export * as PlatformMirrorTest from "./layers/PlatformMirrorTest.js"
/** RBAC from a fixed role list or the environment. */
export * as RbacStatic from "./layers/RbacStatic.js"
/** Allow-all / deny-all RBAC for tests. */
export * as RbacTest from "./layers/RbacTest.js"
/** The `Delegations` layers: `layerCore`, `layer(options)`, `layerConfig`. */
export { DelegationsLayer }

/** The live `Delegations` stack configured from the environment; needs the host's `HttpClient`. */
export const DelegationsLive = DelegationsLayer.layerConfig

/** Delegation metrics (Effect `Metric`s): started, finished by outcome, attempts, retries, durations. */
export * as DelegationMetrics from "./programs/metrics.js"

/** The delegation program and its schedules, for hosts composing their own runtime. */
export { linearRetry, withRetryAfter } from "./programs/runDelegation.js"
