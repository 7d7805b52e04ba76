/**
 * A deterministic discovery for tests: a fixed map of workspace id -> URL.
 *
 * @since 0.1.0
 */
import { Chunk, Context, Effect, Layer, Ref } from "effect"
import { Discovery, DiscoveryError, PeerEndpoint } from "../services/Discovery.js"

/**
 * The workspace ids that were looked up, in order.
 *
 * @since 0.1.0
 * @category tags
 */
export class DiscoveryTest extends Context.Tag("effect-a2a-delegation/DiscoveryTest")<DiscoveryTest, {
  readonly lookups: Effect.Effect<ReadonlyArray<string>>
}>() {}

/**
 * Provides `Discovery` and `DiscoveryTest`. A peer maps to its URL or to the
 * error to fail with; an unknown peer fails like the platform does (HTTP 403).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  peers: Readonly<Record<string, string | DiscoveryError>>
): Layer.Layer<Discovery | DiscoveryTest> =>
  Layer.effectContext(Effect.gen(function*() {
    const lookups = yield* Ref.make(Chunk.empty<string>())
    const resolve = (workspaceId: string) =>
      Ref.update(lookups, Chunk.append(workspaceId)).pipe(Effect.zipRight(Effect.suspend(() => {
        const peer = Object.hasOwn(peers, workspaceId) ? peers[workspaceId] : undefined
        if (peer === undefined) {
          return Effect.fail(
            new DiscoveryError({
              workspaceId,
              reason: "Status",
              status: 403,
              detail: "not authorized to discover this workspace"
            })
          )
        }
        return typeof peer === "string"
          ? Effect.succeed(new PeerEndpoint({ id: workspaceId, url: peer }, { disableValidation: true }))
          : Effect.fail(peer)
      })))
    return Context.make(Discovery, { resolve }).pipe(Context.add(DiscoveryTest, { lookups: Effect.map(Ref.get(lookups), Chunk.toReadonlyArray) }))
  }))
