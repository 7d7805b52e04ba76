/**
 * Where the `Delegations` service keeps every delegation's state.
 *
 * The default is `DelegationStoreMemory` (a `Ref`, bounded by a history of finished
 * delegations). A host can provide its own implementation, e.g. a durable one, to
 * `DelegationsLayer.layerCoreWithoutStore`.
 *
 * @since 0.2.0
 */
import { Context } from "effect"
import type { DateTime, Effect, Option } from "effect"
import type { Delegation } from "./Delegations.js"

/**
 * When and why a finished delegation left the store (see `DelegationEvicted`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Eviction {
  readonly at: DateTime.Utc
  readonly reason: "history" | "cap"
}

/**
 * The store of one `Delegations` layer. Every method is atomic with respect to the others.
 *
 * @since 0.2.0
 * @category tags
 */
export class DelegationStore extends Context.Tag("effect-a2a-delegation/DelegationStore")<DelegationStore, {
  /** Adds a new delegation (`pending`). */
  readonly insert: (delegation: Delegation) => Effect.Effect<void>
  /** The stored delegation; `None` when it was never stored or has been evicted. */
  readonly get: (id: string) => Effect.Effect<Option.Option<Delegation>>
  /**
   * Replaces a delegation with `f` of it, atomically, and returns the new value. When `f`
   * returns its input unchanged (or the id is unknown) nothing is written and `None` is
   * returned, so the caller learns whether it made the transition.
   */
  readonly update: (
    id: string,
    f: (delegation: Delegation) => Delegation
  ) => Effect.Effect<Option.Option<Delegation>>
  /** Every stored delegation, oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<Delegation>>
  /**
   * Notes that the final state of these finished delegations was handed to a reader, so they may
   * now be evicted. Optional: a store that never evicts has nothing to do.
   */
  readonly markRead?: ((ids: ReadonlyArray<string>) => Effect.Effect<void>) | undefined
  /** When and why an id that is no longer stored was evicted, while the store remembers it. Optional. */
  readonly evicted?: ((id: string) => Effect.Effect<Option.Option<Eviction>>) | undefined
}>() {}
