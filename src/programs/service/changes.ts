/**
 * Every write to the store, announced: to the `changes` subscribers (a sliding `PubSub`, so a
 * slow subscriber loses its oldest changes and never slows a write down), and to whoever waits
 * for one delegation to settle (one `Deferred` per awaited id, made only when someone awaits it).
 *
 * The service's store (`Engine.store`) is the host's store wrapped here, so a write by any part of
 * the library (the delegation program, a queued refresh, a cancel) wakes the waiters without
 * polling. Every write must go through `Engine.store`: one made on the `DelegationStore` service
 * directly is announced to no one.
 *
 * @internal
 */
import { Deferred, Effect, Exit, MutableHashMap, MutableRef, Option, PubSub } from "effect"
import type { Scope } from "effect"
import type { Delegation } from "../../services/Delegations.js"
import type { DelegationStore } from "../../services/DelegationStore.js"

/**
 * Changes a subscriber may fall behind by before it loses the oldest.
 *
 * @internal
 */
export const SUBSCRIBER_BUFFER = 1024

/** A waiter's news: the state that settled the delegation, or `None` when the layer closed (read the store). */
type Settled = Deferred.Deferred<Option.Option<Delegation>>

/** @internal */
export interface Changes {
  readonly pubsub: PubSub.PubSub<Delegation>
  readonly waiters: MutableHashMap.MutableHashMap<string, Settled>
  /** Cleared when the layer closes: later writes (of a `delegate` racing the close) announce nothing. */
  readonly open: MutableRef.MutableRef<boolean>
}

/**
 * The change feed of one layer; closing the scope wakes every waiter with `None`.
 *
 * @internal
 */
export const make: Effect.Effect<Changes, never, Scope.Scope> = Effect.gen(function*() {
  const pubsub = yield* PubSub.sliding<Delegation>(SUBSCRIBER_BUFFER)
  const changes: Changes = { pubsub, waiters: MutableHashMap.empty(), open: MutableRef.make(true) }
  yield* Effect.addFinalizer(() => Effect.zipRight(wakeAll(changes), PubSub.shutdown(pubsub)))
  return changes
})

/**
 * `store`, announcing each write.
 *
 * @internal
 */
export const observe = (store: DelegationStore["Type"], changes: Changes): DelegationStore["Type"] => ({
  ...store,
  create: (delegation) =>
    Effect.tap(store.create(delegation), (created) =>
      created._tag === "Created" ? announce(changes, created.stored.delegation) : Effect.void),
  update: (id, change, guard) =>
    Effect.tap(store.update(id, change, guard), (written) =>
      Option.isSome(written) ? announce(changes, written.value.delegation) : Effect.void)
})

/**
 * True once the delegation's own work is over: final, queued on the platform, or (in `platform`
 * dispatch) accepted by the platform.
 *
 * @internal
 */
export const isSettled = (delegation: Delegation): boolean =>
  delegation.isWaitingOnPlatform || (delegation.status !== "pending" && delegation.status !== "in_progress")

const announce = (changes: Changes, delegation: Delegation): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!MutableRef.get(changes.open)) return Effect.void
    if (isSettled(delegation)) wake(changes, delegation.id, Option.some(delegation))
    return PubSub.publish(changes.pubsub, delegation)
  })

const wake = (changes: Changes, id: string, news: Option.Option<Delegation>) => {
  const waiting = MutableHashMap.get(changes.waiters, id)
  if (Option.isNone(waiting)) return
  MutableHashMap.remove(changes.waiters, id)
  Deferred.unsafeDone(waiting.value, Exit.succeed(news))
}

const wakeAll = (changes: Changes) =>
  Effect.sync(() => {
    MutableRef.set(changes.open, false)
    for (const [id] of Array.from(changes.waiters)) wake(changes, id, Option.none())
  })

/**
 * The `Deferred` woken by the next write that settles `id` (shared by every waiter of it).
 *
 * @internal
 */
export const nextSettled = (changes: Changes, id: string): Effect.Effect<Settled> =>
  Effect.fiberIdWith((fiberId) =>
    Effect.sync(() => {
      const waiting = MutableHashMap.get(changes.waiters, id)
      if (Option.isSome(waiting)) return waiting.value
      const settled = Deferred.unsafeMake<Option.Option<Delegation>>(fiberId)
      MutableHashMap.set(changes.waiters, id, settled)
      return settled
    })
  )

/**
 * Wakes the waiters of `id` with a state read from the store (that settled before they registered).
 *
 * @internal
 */
export const settledAlready = (changes: Changes, delegation: Delegation): Effect.Effect<void> =>
  Effect.sync(() => wake(changes, delegation.id, Option.some(delegation)))
