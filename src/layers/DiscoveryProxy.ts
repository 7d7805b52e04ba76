/**
 * Discovery for proxy dispatch (`A2A_VIA_PLATFORM_PROXY`): every peer is reached
 * through the platform's A2A proxy, `POST {platform}/workspaces/{id}/a2a`.
 *
 * The proxy resolves the peer itself (and queues the request when the peer is
 * busy, answering 202 `{"queued": true}`), so no discovery request is made.
 *
 * @since 0.1.0
 */
import { Effect, Either, Layer } from "effect"
import { Discovery, DiscoveryError, PeerEndpoint } from "../services/Discovery.js"
import { pathOf } from "./internal/http.js"

/**
 * Builds the proxy discovery.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly platformUrl: string }) => {
  const base = options.platformUrl.replace(/\/+$/, "")
  return Discovery.of({
    resolve: (workspaceId) =>
      Either.match(pathOf`/workspaces/${workspaceId}/a2a`, {
        onLeft: () => Effect.fail(new DiscoveryError({ workspaceId, reason: "InvalidWorkspaceId", detail: "" })),
        onRight: (path) =>
          Effect.succeed(
            new PeerEndpoint({ id: workspaceId, url: base + path, viaPlatform: true }, { disableValidation: true })
          )
      })
  })
}

/**
 * The proxy discovery layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly platformUrl: string }): Layer.Layer<Discovery> =>
  Layer.succeed(Discovery, make(options))
