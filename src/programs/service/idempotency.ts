/**
 * The idempotency keys of one layer: key -> delegation id, the `max` most recent only, and a lock
 * so that concurrent `delegate` calls with the same key make one delegation.
 *
 * @internal
 */
import { Effect } from "effect"
import type { DelegationId } from "../../services/Delegations.js"

/**
 * Keys remembered at most (the oldest are forgotten first).
 *
 * @internal
 */
export const MAX_KEYS = 10_000

/** @internal */
export interface Keys {
  /** In the order they were last set (a `Map` keeps insertion order). */
  readonly ids: Map<string, DelegationId>
  readonly lock: Effect.Semaphore
}

/** @internal */
export const make: Effect.Effect<Keys> = Effect.map(Effect.makeSemaphore(1), (lock) => ({ ids: new Map(), lock }))

/** @internal */
export const get = (keys: Keys, key: string): Effect.Effect<DelegationId | undefined> =>
  Effect.sync(() => keys.ids.get(key))

/**
 * Points `key` at `id`, forgetting the oldest key beyond `MAX_KEYS`.
 *
 * @internal
 */
export const set = (keys: Keys, key: string, id: DelegationId): Effect.Effect<void> =>
  Effect.sync(() => {
    keys.ids.delete(key)
    keys.ids.set(key, id)
    if (keys.ids.size > MAX_KEYS) {
      const oldest = keys.ids.keys().next()
      if (oldest.done !== true) keys.ids.delete(oldest.value)
    }
  })
