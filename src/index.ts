/**
 * effect-a2a-delegation: non-blocking A2A delegation for Effect.
 *
 * The service contracts' tags, models and errors are exported by name; every other module
 * is a namespace named after its file.
 *
 * @since 0.1.0
 */
import * as DelegationsLayer from "./layers/DelegationsLayer.js"

// --- service contracts: tags, models, errors, guards --------------------------------------------

export {
  A2ARequestError,
  A2AResponseError,
  A2ATransport,
  A2ATransportError,
  isTransportError,
  isVersionMismatch,
  JsonRpcError,
  MessageReply,
  QueuedReply,
  TaskArtifactUpdate,
  TaskReply,
  TaskStatusUpdate
} from "./services/A2ATransport.js"
export type {
  A2AError,
  CancelTask,
  GetTask,
  PeerProtocol,
  SendMessage,
  SendReply,
  StreamEvent
} from "./services/A2ATransport.js"
export { Audit } from "./services/Audit.js"
export type { AuditEvent, AuditOutcome, AuditRecord } from "./services/Audit.js"
export {
  AwaitTimeout,
  Delegation,
  DelegationAborted,
  DelegationAlreadyFinished,
  DelegationEvicted,
  DelegationFailure,
  DelegationId,
  DelegationNotFound,
  Delegations,
  DelegationStatus,
  DelegationTimeout,
  DelegationUnresolved,
  DispatchMode,
  InvalidDelegation,
  Overloaded,
  PeerTaskFailed
} from "./services/Delegations.js"
export type { AwaitOptions, DelegateRequest, DelegationLookupError } from "./services/Delegations.js"
export {
  applyChange,
  DEFAULT_HISTORY_CAP,
  DEFAULT_RETENTION,
  DelegationStore,
  DelegationStoreError,
  retentionLimits,
  UNFINISHED
} from "./services/DelegationStore.js"
export type {
  Created,
  DelegationChange,
  Eviction,
  Guard,
  NewDelegation,
  Retention,
  StoredDelegation
} from "./services/DelegationStore.js"
export { Discovery, DiscoveryError, PeerEndpoint } from "./services/Discovery.js"
export { PlatformDelegationRow, PlatformError, PlatformMirror } from "./services/PlatformMirror.js"
export type {
  NotifyDelegation,
  PlatformDelegate,
  PlatformDelegated,
  RecordDelegation,
  UpdateDelegation
} from "./services/PlatformMirror.js"
export { AccessDenied, Rbac } from "./services/Rbac.js"
export { NativeRequestBounds, RequestBounds } from "./services/RequestBounds.js"
export type { Bounds } from "./services/RequestBounds.js"
export type { Permissions } from "./services/Rbac.js"

// --- modules ----------------------------------------------------------------------------------------

/** A2A wire schemas (1.0 and v0.3), version constants and helpers. */
export * as A2A from "./services/A2A.js"
/** Delegation metrics (Effect `Metric`s): started, finished by outcome, attempts, retries, durations. */
export * as DelegationMetrics from "./services/DelegationMetrics.js"
/** The per-peer A2A version choice (`A2A_PROTOCOL`), for hosts writing their own transport. */
export * as ProtocolChoice from "./services/ProtocolChoice.js"

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
/** The `Delegations` layers: `layerConfig`, `layer(options)`, `layerCore(settings)`, `layerCoreWithoutStore`. */
export * as DelegationsLayer from "./layers/DelegationsLayer.js"
/** The default `DelegationStore`: a `Ref` in memory with a bounded history. */
export * as DelegationStoreMemory from "./layers/DelegationStoreMemory.js"
/** A cache in front of any `Discovery` (`DISCOVERY_CACHE_TTL`): one lookup per peer per time to live. */
export * as DiscoveryCache from "./layers/DiscoveryCache.js"
/** Live discovery through the platform registry. */
export * as DiscoveryHttp from "./layers/DiscoveryHttp.js"
/** Discovery for proxy dispatch: every peer through the platform's A2A proxy. */
export * as DiscoveryProxy from "./layers/DiscoveryProxy.js"
/** Fixed-map discovery for tests. */
export * as DiscoveryTest from "./layers/DiscoveryTest.js"
/** The platform's API as one paced `HttpClient`, shared by discovery, the mirror and the proxy. */
export * as PlatformHttpClient from "./layers/PlatformHttpClient.js"
/** Live platform mirror over HTTP. */
export * as PlatformMirrorHttp from "./layers/PlatformMirrorHttp.js"
/** In-memory platform mirror for tests. */
export * as PlatformMirrorTest from "./layers/PlatformMirrorTest.js"
/** RBAC from a fixed role list or the environment. */
export * as RbacStatic from "./layers/RbacStatic.js"
/** Allow-all / deny-all RBAC for tests. */
export * as RbacTest from "./layers/RbacTest.js"

/**
 * The live `Delegations` stack configured from the environment (the README's configuration
 * table): `DelegationsLayer.layerConfig(DelegationsLayer.config)`. Needs the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const DelegationsLive = DelegationsLayer.layerConfig(DelegationsLayer.config)
