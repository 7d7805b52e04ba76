/**
 * A Node `HttpClient` for hosts that delegate at volume: undici with a bounded
 * connection pool per origin, so thousands of delegations in flight share a few
 * hundred keep-alive sockets instead of opening one each (no EMFILE).
 *
 * Exported from `effect-a2a-delegation/node`; the core never picks a client.
 *
 * @since 0.1.0
 */
import type { HttpClient } from "@effect/platform"
import { NodeHttpClient, Undici } from "@effect/platform-node"
import { Duration, Effect, Layer } from "effect"

/**
 * Pool settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Sockets per origin (platform, each peer); requests beyond wait for a free one. Default 256. */
  readonly connections?: number | undefined
  /** How long an idle keep-alive socket is kept. Default 10 seconds. */
  readonly keepAliveTimeout?: Duration.DurationInput | undefined
}

/**
 * An undici `HttpClient` over its own bounded `Agent`, destroyed with the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<HttpClient.HttpClient> =>
  NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
    Layer.provide(
      Layer.scoped(
        NodeHttpClient.Dispatcher,
        Effect.acquireRelease(
          Effect.sync(() =>
            new Undici.Agent({
              connections: options.connections ?? 256,
              keepAliveTimeout: Duration.toMillis(options.keepAliveTimeout ?? "10 seconds")
            })
          ),
          (agent) => Effect.promise(() => agent.destroy())
        )
      )
    )
  )
