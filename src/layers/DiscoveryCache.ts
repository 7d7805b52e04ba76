/**
 * A cache in front of any `Discovery` (`DISCOVERY_CACHE_TTL`), so that delegations to one peer
 * do not each cost a platform request.
 *
 * Each target's endpoint is kept for a time to live, on the `Clock` (so `TestClock` drives it),
 * in an Effect `Cache` of bounded capacity (least recently used go first). Concurrent discoveries
 * of one target share one lookup. A failure is never kept: the lookups waiting for it share it,
 * and the next one asks again. `invalidate` drops a target's endpoint; the delegation program
 * calls it when a request to the peer fails at the transport or the peer answers 404.
 *
 * @since 0.4.0
 */
import { Cache, Duration, Effect, Equal, Exit, Fiber, Hash, Layer, Option } from "effect"
import type { Scope, Tracer } from "effect"
import { Discovery } from "../services/Discovery.js"

/**
 * How long a target's endpoint is kept, and how many targets at most.
 *
 * @since 0.4.0
 * @category models
 */
export interface Options {
  /** How long a target's endpoint is kept; zero keeps nothing (every discovery is a lookup). */
  readonly timeToLive: Duration.DurationInput
  /** Targets remembered at once, least recently used dropped first (`DEFAULT_CAPACITY`). */
  readonly capacity?: number | undefined
}

/**
 * Targets remembered by default.
 *
 * @since 0.4.0
 * @category constants
 */
export const DEFAULT_CAPACITY = 1000

/**
 * How long a target's endpoint is kept by default (`DISCOVERY_CACHE_TTL`).
 *
 * @since 0.4.0
 * @category constants
 */
export const DEFAULT_TIME_TO_LIVE: Duration.Duration = Duration.seconds(30)

/**
 * A cache key: the target, with the span of the discovery that looks it up. Effect's `Cache` runs a
 * lookup in the context the cache was built in, so the span is carried here to keep the request in
 * the delegation's trace; only the target counts as the key.
 */
class Target implements Equal.Equal {
  constructor(readonly workspaceId: string, readonly parent: Option.Option<Tracer.AnySpan>) {}
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof Target && that.workspaceId === this.workspaceId
  }
  [Hash.symbol](): number {
    return Hash.string(this.workspaceId)
  }
}

const lookupWith = (underlying: Discovery["Type"]) => (target: Target) =>
  Option.match(target.parent, {
    onNone: () => underlying.resolve(target.workspaceId),
    onSome: (span) => Effect.withParentSpan(underlying.resolve(target.workspaceId), span)
  })

/**
 * Wraps `underlying` with the cache; its lookups run in the scope, so closing it interrupts them.
 * A zero time to live returns `underlying` as it is.
 *
 * @since 0.4.0
 * @category constructors
 */
export const make = (
  underlying: Discovery["Type"],
  options: Options
): Effect.Effect<Discovery["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeToLive = Duration.decode(options.timeToLive)
    // Effect's `Cache` keeps an entry until the clock has moved past its expiry, so zero would still keep it.
    if (!Duration.greaterThan(timeToLive, Duration.zero)) return underlying
    const scope = yield* Effect.scope
    const cache = yield* Cache.makeWith({
      capacity: options.capacity ?? DEFAULT_CAPACITY,
      lookup: lookupWith(underlying),
      timeToLive: Exit.match({ onFailure: () => Duration.zero, onSuccess: () => timeToLive })
    })
    const forget = (workspaceId: string) => cache.invalidate(new Target(workspaceId, Option.none()))
    const lookup = (workspaceId: string) =>
      Effect.option(Effect.currentParentSpan).pipe(
          Effect.flatMap((parent) => cache.get(new Target(workspaceId, parent))),
          // Expired at once is not gone at once (see above): drop a failure, so the next discovery asks again.
          Effect.tapError(() => forget(workspaceId)),
          // The shared lookup runs in the first caller's fiber: forked into the scope, interrupting one
          // caller (a cancelled delegation) no longer interrupts the others waiting for it.
          Effect.forkIn(scope),
          Effect.flatMap(Fiber.join)
        )
    return Discovery.of({
      // A peer already found is answered at once, without forking the lookup (once per delegation).
      resolve: (workspaceId) =>
        Effect.flatMap(
          cache.getOptionComplete(new Target(workspaceId, Option.none())),
          Option.match({ onNone: () => lookup(workspaceId), onSome: Effect.succeed })
        ),
      invalidate: forget
    })
  })

/**
 * The cache over the `Discovery` it is given (e.g. `Layer.provide(DiscoveryHttp.layer(options))`).
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Discovery, never, Discovery> =>
  Layer.scoped(Discovery, Effect.flatMap(Discovery, (underlying) => make(underlying, options)))
