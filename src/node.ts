/**
 * Node convenience layers (needs `@effect/platform-node`).
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type { ConfigError } from "effect"
import { Layer } from "effect"
import * as DelegationsLayer from "./layers/DelegationsLayer.js"
import * as NodeHttpClientPooled from "./layers/NodeHttpClientPooled.js"
import type { Delegations, DelegationStoreError } from "./services/Delegations.js"

/** The recommended client for Node hosts: undici with a bounded connection pool, on `HttpClient.make`. */
export { NodeHttpClientPooled }

/**
 * `DelegationsLive` with everything a Node host needs: the pooled client, and the
 * file system for `AUDIT_LOG_PATH`. Configured from the environment.
 *
 * @since 0.1.0
 * @category layers
 */
export const NodeDelegationsLive: Layer.Layer<Delegations, ConfigError.ConfigError | DelegationStoreError> = DelegationsLayer.layerConfig(
  DelegationsLayer.config
).pipe(
  Layer.provide(Layer.mergeAll(NodeHttpClientPooled.layer(), NodeFileSystem.layer, NodePath.layer))
)
