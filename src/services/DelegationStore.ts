/**
 * Where the `Delegations` service keeps every delegation's state: the one source of truth for a
 * delegation, read and written by every replica that shares the store.
 *
 * The default is `DelegationStoreMemory` (a `Ref`: one process, bounded by a history of finished
 * delegations). `DelegationStoreSql` keeps delegations in SQLite (one host, outliving its process)
 * or PostgreSQL (several replicas). A store keeps, beside the public `Delegation`, what a replica
 * needs to resume one another replica left: the full task, the delegating workspace and its
 * idempotency key, a cancel request, the owner replica and its lease, and a revision.
 *
 * Writes are guarded: a transition names the statuses it may leave and the owner that makes it;
 * a guard that does not hold writes nothing (`None`), and a write by a replica that no longer owns
 * the delegation fails with `DelegationStoreError` `LeaseLost`, so a replica that lost its lease
 * never overwrites the new owner's state.
 *
 * @since 0.2.0
 */
import { Context, Duration } from "effect"
import type { DateTime, Effect, Option, Stream } from "effect"
import type { DelegationStatus, DelegationStoreError } from "./Delegations.js"
import { Delegation } from "./Delegations.js"

export {
  /**
   * A store could not do what was asked (see `Delegations.DelegationStoreError`).
   *
   * @since 0.4.0
   * @category errors
   */
  DelegationStoreError
} from "./Delegations.js"

/**
 * How long a store keeps finished delegations (the same rules in every store).
 *
 * @since 0.4.0
 * @category models
 */
export interface Retention {
  /**
   * Finished delegations kept once they have been read or `retention` has passed
   * (`DELEGATION_HISTORY`); pending, running and queued ones are never evicted.
   */
  readonly history: number
  /** How long an unread finished delegation is kept beyond `history` (`DELEGATION_RETENTION`, 1 hour). */
  readonly retention?: Duration.DurationInput | undefined
  /** Finished delegations kept at most, read or not (`DELEGATION_HISTORY_CAP`, 10,000; at least `history`). */
  readonly cap?: number | undefined
}

/**
 * Default `Retention.cap`.
 *
 * @since 0.4.0
 * @category constants
 */
export const DEFAULT_HISTORY_CAP = 10_000

/**
 * Default `Retention.retention`.
 *
 * @since 0.4.0
 * @category constants
 */
export const DEFAULT_RETENTION: Duration.Duration = Duration.hours(1)

/**
 * The cap (at least `history`) and the retention in milliseconds, with their defaults.
 *
 * @since 0.4.0
 * @category utils
 */
export const retentionLimits = (
  options: Retention
): { readonly cap: number; readonly retentionMillis: number } => ({
  cap: Math.max(options.history, options.cap ?? DEFAULT_HISTORY_CAP),
  retentionMillis: Duration.toMillis(options.retention ?? DEFAULT_RETENTION)
})

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
 * One delegation with what a store keeps beside it.
 *
 * @since 0.4.0
 * @category models
 */
export interface StoredDelegation {
  readonly delegation: Delegation
  /** Incremented by every write. */
  readonly revision: number
  /** The delegating workspace (the host's `WORKSPACE_ID`): idempotency keys and `list` are per origin. */
  readonly origin: string
  /** The full task, while the delegation is unfinished (a finished one keeps its 200-character preview only). */
  readonly task: string | undefined
  readonly idempotencyKey: string | undefined
  /** A replica other than the owner asked for it to be cancelled. */
  readonly cancelRequested: boolean
  /** The replica running the delegation, while it is unfinished. */
  readonly owner: string | undefined
  /** Until when the owner's lease holds (epoch milliseconds, by the store's clock); past it, any replica may claim it. */
  readonly leaseExpiresAt: number | undefined
}

/**
 * A delegation to create.
 *
 * @since 0.4.0
 * @category models
 */
export interface NewDelegation {
  readonly delegation: Delegation
  readonly origin: string
  readonly task: string
  readonly idempotencyKey?: string | undefined
  /** The replica that runs it, for `leaseMillis` from now. */
  readonly owner: string
  readonly leaseMillis: number
}

/**
 * What `create` did: stored the new delegation, or found a delegation of the same origin and
 * idempotency key that answers for it (unfinished, or finished other than failed or cancelled).
 * A failed or cancelled one gives its key up to the new delegation.
 *
 * @since 0.4.0
 * @category models
 */
export type Created =
  | { readonly _tag: "Created"; readonly stored: StoredDelegation }
  | { readonly _tag: "Existing"; readonly stored: StoredDelegation }

/**
 * The fields of a `Delegation` that a write changes; `undefined` clears an optional field.
 *
 * @since 0.4.0
 * @category models
 */
export type DelegationChange = {
  readonly [K in Exclude<keyof Delegation, "id" | "createdAt" | "isFinished" | "isWaitingOnPlatform">]?:
    | Delegation[K]
    | undefined
}

/**
 * The delegation with `change` applied, for a store's `update`; a key given as `undefined` clears
 * that optional field. Not validated: a store that serialises it checks the fields then.
 *
 * @since 0.4.0
 * @category constructors
 */
export const applyChange = (delegation: Delegation, change: DelegationChange): Delegation => {
  // The keys are the Delegation's own fields (DelegationChange names no others), each of its type or left out.
  const fields = { ...delegation, ...change } as ConstructorParameters<typeof Delegation>[0]
  // Clearing builds a fresh object instead of `delete`, which would leave every later state of the
  // delegation a slow dictionary-mode object (in `npm run bench` the store's own cost doubled).
  return new Delegation(clears(change) ? withoutUndefined(fields) : fields, { disableValidation: true })
}

const clears = (change: DelegationChange): boolean => {
  for (const key in change) {
    if (change[key as keyof DelegationChange] === undefined) return true
  }
  return false
}

const withoutUndefined = <A extends object>(fields: A): A => {
  const kept: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) kept[key] = value
  }
  return kept as A
}

/**
 * When a write may happen: the delegation's status is one of `status` (any when left out), and
 * `owner` owns it (anyone when left out; a different owner fails with `LeaseLost`).
 *
 * @since 0.4.0
 * @category models
 */
export interface Guard {
  readonly status?: ReadonlyArray<DelegationStatus> | undefined
  readonly owner?: string | undefined
}

/**
 * Statuses in which a delegation is not finished.
 *
 * @since 0.4.0
 * @category constants
 */
export const UNFINISHED: ReadonlyArray<DelegationStatus> = ["pending", "in_progress", "queued"]

/**
 * The store of one or more `Delegations` layers. Every method is atomic with respect to the others,
 * also across the processes that share a durable store.
 *
 * @since 0.2.0
 * @category tags
 */
export class DelegationStore extends Context.Tag("effect-a2a-delegation/DelegationStore")<DelegationStore, {
  /**
   * True when other processes may share the store (SQL): closing a layer then releases its
   * delegations to them instead of failing them, and a delegation may run on another replica.
   */
  readonly shared: boolean
  /** Stores a new delegation, unless its idempotency key already answers for one (see `Created`). */
  readonly create: (delegation: NewDelegation) => Effect.Effect<Created, DelegationStoreError>
  /** The stored delegation; `None` when it was never stored or has been evicted. */
  readonly get: (id: string) => Effect.Effect<Option.Option<StoredDelegation>, DelegationStoreError>
  /**
   * Applies `change` when `guard` holds, and returns the new state; `None` when the
   * id is unknown or its status is not one the guard allows. A `guard.owner` that no longer owns it
   * fails with `LeaseLost`.
   */
  readonly update: (
    id: string,
    change: DelegationChange,
    guard: Guard
  ) => Effect.Effect<Option.Option<StoredDelegation>, DelegationStoreError>
  /** The newest `limit` delegations of `origin`, oldest first. */
  readonly list: (
    origin: string,
    limit: number
  ) => Effect.Effect<ReadonlyArray<StoredDelegation>, DelegationStoreError>
  /**
   * The unfinished delegations of `origin` owned by `owner` (every owner when left out), oldest first:
   * what a replica runs, follows on the platform, or must release.
   */
  readonly unfinished: (
    origin: string,
    owner?: string
  ) => Effect.Effect<ReadonlyArray<StoredDelegation>, DelegationStoreError>
  /**
   * Takes over at most `limit` unfinished delegations of `origin` whose lease has expired (by the
   * store's clock: the database's for SQL), oldest first: `owner` owns them for `leaseMillis`. Two
   * replicas never claim the same one.
   */
  readonly claim: (options: {
    readonly origin: string
    readonly owner: string
    readonly leaseMillis: number
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<StoredDelegation>, DelegationStoreError>
  /** Extends the lease of every unfinished delegation `owner` holds to `leaseMillis` from now; returns their ids. */
  readonly renew: (owner: string, leaseMillis: number) => Effect.Effect<ReadonlyArray<string>, DelegationStoreError>
  /** Ends the lease of these delegations (every one `owner` holds when `ids` is left out), so another replica may claim them now. */
  readonly release: (owner: string, ids?: ReadonlyArray<string>) => Effect.Effect<void, DelegationStoreError>
  /** Asks the owner of an unfinished delegation to cancel it; `None` when it is unknown or finished. */
  readonly requestCancel: (id: string) => Effect.Effect<Option.Option<StoredDelegation>, DelegationStoreError>
  /** The unfinished delegations `owner` holds whose cancellation was requested. */
  readonly cancelRequests: (owner: string) => Effect.Effect<ReadonlyArray<string>, DelegationStoreError>
  /**
   * Notes that the final state of these finished delegations was handed to a reader, so they may
   * now be evicted (after `DELEGATION_HISTORY`).
   */
  readonly markRead: (ids: ReadonlyArray<string>) => Effect.Effect<void, DelegationStoreError>
  /** When and why an id that is no longer stored was evicted, while the store remembers it. */
  readonly evicted: (id: string) => Effect.Effect<Option.Option<Eviction>, DelegationStoreError>
  /**
   * Ids written by any process, as they are written (PostgreSQL `LISTEN`), for a replica to wake
   * its waiters without polling. Left out, a replica polls for another's writes.
   */
  readonly written?: Stream.Stream<string, DelegationStoreError> | undefined
}>() {}
