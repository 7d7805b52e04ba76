/**
 * The default `DelegationStore`: a `Ref` in memory, keeping every unfinished delegation and
 * the finished ones until they may go.
 *
 * A finished delegation may be evicted once its final state has been read (`markRead`) or
 * `retention` has passed since it finished; the oldest of those go first whenever more than
 * `history` finished delegations are kept. Unread ones within `retention` are kept beyond
 * `history`, up to the hard `cap`; past it the oldest of them go too. An evicted id is
 * remembered (when and why, for `DelegationEvicted`) among the last `cap` evicted ids.
 *
 * `get` is a hash lookup; `list` walks the newest ids in creation order; eviction takes the
 * oldest finished id from a queue; idempotency keys have their own map. The replica queries
 * (`unfinished`, `claim`, `renew`, ...) walk the creation order: one process holds the store, so they
 * run at close and in the reconciler's rounds, not per delegation. An evicted id stays in the creation order until
 * the next compaction, and `list` skips it.
 *
 * One process: the store is not `shared`, so closing its `Delegations` layer ends what runs.
 * Leases are kept by the `Clock` all the same, so the contract holds as for a durable store.
 *
 * @since 0.2.0
 */
import { Array as Arr, DateTime, Effect, HashMap, Layer, Option, Ref } from "effect"
import * as Fifo from "../internal/fifo.js"
import type {
  Created,
  DelegationChange,
  Eviction,
  Guard,
  NewDelegation,
  Retention,
  StoredDelegation
} from "../services/DelegationStore.js"
import {
  applyChange,
  DEFAULT_HISTORY_CAP,
  DelegationStore,
  DelegationStoreError,
  retentionLimits
} from "../services/DelegationStore.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options extends Retention {
  /**
   * Treat the store as shared (as a SQL store is): layers built over the same instance act as
   * replicas of one another - leases, takeover, cancel and await across them. For tests of a
   * several-replica host in one process; false by default.
   */
  readonly shared?: boolean | undefined
}

/**
 * Default `cap` (`DEFAULT_HISTORY_CAP` of the store contract).
 *
 * @since 0.3.0
 * @category constants
 */
export const DEFAULT_CAP = DEFAULT_HISTORY_CAP

/**
 * Default `retention`.
 *
 * @since 0.3.0
 * @category constants
 */
export { DEFAULT_RETENTION } from "../services/DelegationStore.js"

interface Entry {
  readonly stored: StoredDelegation
  /** Already in a finished queue. */
  readonly finished: boolean
  /** Its final state was handed to a reader. */
  readonly read: boolean
}

interface State {
  readonly byId: HashMap.HashMap<string, Entry>
  /** Every id in creation order, evicted ones included until the next compaction. */
  readonly created: Fifo.Fifo<string>
  /** `origin` + NUL + idempotency key -> id. */
  readonly keys: HashMap.HashMap<string, string>
  /** Finished ids not looked at by eviction yet, oldest finished first. */
  readonly finished: Fifo.Fifo<string>
  /** Finished ids eviction passed over (unread, within retention), oldest finished first. */
  readonly held: Fifo.Fifo<string>
  /** Evicted ids, remembered. */
  readonly evicted: HashMap.HashMap<string, Eviction>
  /** The remembered evicted ids, oldest first. */
  readonly evictedOrder: Fifo.Fifo<string>
  /** Finished delegations stored and not read yet: `markRead` has nothing to look up at 0. */
  readonly unread: number
}

const initial: State = {
  byId: HashMap.empty(),
  created: Fifo.empty(),
  keys: HashMap.empty(),
  finished: Fifo.empty(),
  held: Fifo.empty(),
  evicted: HashMap.empty(),
  evictedOrder: Fifo.empty(),
  unread: 0
}

interface Limits {
  readonly history: number
  readonly cap: number
  readonly retentionMillis: number
}

/**
 * Builds an empty store.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<DelegationStore["Type"]> => {
  const limits: Limits = { history: options.history, ...retentionLimits(options) }
  return Effect.map(Ref.make(initial), (ref) => {
    const read = <A>(f: (state: State) => A) => Effect.map(Ref.get(ref), f)
    const modify = <A>(f: (state: State, now: number) => readonly [A, State]) =>
      Effect.clockWith((clock) => Ref.modify(ref, (state) => f(state, clock.unsafeCurrentTimeMillis())))
    return DelegationStore.of({
      shared: options.shared ?? false,
      create: (delegation) => modify((state, now) => create(state, delegation, now)),
      get: (id) => read((state) => Option.map(HashMap.get(state.byId, id), (entry) => entry.stored)),
      update: (id, change, guard) =>
        Effect.flatMap(Ref.modify(ref, (state) => updated(limits, state, id, change, guard)), (result) =>
          result === lost ? Effect.fail(new DelegationStoreError({ reason: "LeaseLost", operation: "update", id })) : Effect.succeed(result)),
      list: (origin, limit) => read((state) => newest(state, origin, limit)),
      unfinished: (origin, owner) =>
        read((state) => unfinishedOf(state, (s) => s.origin === origin && (owner === undefined || s.owner === owner))),
      claim: ({ leaseMillis, limit, origin, owner }) =>
        modify((state, now) => {
          const expired = unfinishedOf(state, (s) => s.origin === origin && (s.leaseExpiresAt ?? 0) < now).slice(0, limit)
          return leased(state, expired.map((s) => s.delegation.id), (s) => ({ ...s, owner, leaseExpiresAt: now + leaseMillis }))
        }),
      renew: (owner, leaseMillis) =>
        modify((state, now) => {
          const ids = unfinishedOf(state, (s) => s.owner === owner).map((s) => s.delegation.id)
          const [, next] = leased(state, ids, (s) => ({ ...s, leaseExpiresAt: now + leaseMillis }), false)
          return [ids, next]
        }),
      release: (owner, ids) =>
        modify((state) => {
          const wanted = ids === undefined ? undefined : new Set(ids)
          const mine = unfinishedOf(state, (s) => s.owner === owner && (wanted === undefined || wanted.has(s.delegation.id)))
          // No owner: its renewals must not take it back.
          const [, next] = leased(state, mine.map((s) => s.delegation.id), (s) => ({ ...s, owner: undefined, leaseExpiresAt: 0 }))
          return [undefined, next]
        }),
      requestCancel: (id) =>
        modify((state) => {
          if (!Option.exists(HashMap.get(state.byId, id), (entry) => !entry.finished)) return [Option.none(), state]
          const [[stored], next] = leased(state, [id], (s) => ({ ...s, cancelRequested: true }))
          return [Option.fromNullable(stored), next]
        }),
      cancelRequests: (owner) =>
        read((state) => unfinishedOf(state, (s) => s.owner === owner && s.cancelRequested).map((s) => s.delegation.id)),
      markRead: (ids) => Ref.update(ref, (state) => markRead(state, ids)),
      evicted: (id) => read((state) => HashMap.get(state.evicted, id))
    })
  })
}

/**
 * The store as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<DelegationStore> => Layer.effect(DelegationStore, make(options))

const keyOf = (origin: string, key: string) => `${origin}\u0000${key}`

const create = (state: State, input: NewDelegation, now: number): readonly [Created, State] => {
  let current = state
  if (input.idempotencyKey !== undefined) {
    const key = keyOf(input.origin, input.idempotencyKey)
    const existing = Option.flatMap(HashMap.get(state.keys, key), (id) => HashMap.get(state.byId, id))
    if (Option.isSome(existing)) {
      const { status } = existing.value.stored.delegation
      if (status !== "failed" && status !== "cancelled") return [{ _tag: "Existing", stored: existing.value.stored }, state]
      // A failed or cancelled delegation gives its key up.
      const old = existing.value
      current = {
        ...current,
        byId: HashMap.set(current.byId, old.stored.delegation.id, {
          ...old,
          stored: { ...old.stored, idempotencyKey: undefined, revision: old.stored.revision + 1 }
        })
      }
    }
  }
  const stored: StoredDelegation = {
    delegation: input.delegation,
    revision: 1,
    origin: input.origin,
    task: input.task,
    idempotencyKey: input.idempotencyKey,
    cancelRequested: false,
    owner: input.owner,
    leaseExpiresAt: now + input.leaseMillis
  }
  const id = input.delegation.id
  return [{ _tag: "Created", stored }, {
    ...current,
    byId: HashMap.set(current.byId, id, { stored, finished: false, read: false }),
    created: Fifo.push(current.created, id),
    keys: input.idempotencyKey === undefined ? current.keys : HashMap.set(current.keys, keyOf(input.origin, input.idempotencyKey), id)
  }]
}

/** The unfinished delegations for which `keep` holds, oldest first. */
const unfinishedOf = (state: State, keep: (stored: StoredDelegation) => boolean): Array<StoredDelegation> => {
  const found: Array<StoredDelegation> = []
  for (const id of Fifo.toArray(state.created)) {
    const entry = HashMap.get(state.byId, id)
    if (Option.isSome(entry) && !entry.value.finished && keep(entry.value.stored)) found.push(entry.value.stored)
  }
  return found
}

/** Rewrites these unfinished delegations' bookkeeping (owner, lease, cancel request); `bump`s their revision. */
const leased = (
  state: State,
  ids: ReadonlyArray<string>,
  f: (stored: StoredDelegation) => StoredDelegation,
  bump = true
): readonly [Array<StoredDelegation>, State] => {
  let byId = state.byId
  const written: Array<StoredDelegation> = []
  for (const id of ids) {
    const entry = HashMap.unsafeGet(byId, id)
    const next = f(entry.stored)
    const stored = bump ? { ...next, revision: next.revision + 1 } : next
    byId = HashMap.set(byId, id, { ...entry, stored })
    written.push(stored)
  }
  return [written, { ...state, byId }]
}

/** The newest `limit` delegations of `origin`, oldest first. */
const newest = (state: State, origin: string, limit: number): Array<StoredDelegation> => {
  const all = Arr.filterMap(Fifo.toArray(state.created), (id) =>
    Option.filterMap(HashMap.get(state.byId, id), (entry) =>
      entry.stored.origin === origin ? Option.some(entry.stored) : Option.none()))
  return all.length <= limit ? all : all.slice(all.length - limit)
}

/** A write by a replica that no longer owns the delegation. */
const lost = Symbol("lost")


const updated = (
  limits: Limits,
  state: State,
  id: string,
  change: DelegationChange,
  guard: Guard
): readonly [Option.Option<StoredDelegation> | typeof lost, State] => {
  const entry = HashMap.get(state.byId, id)
  if (Option.isNone(entry)) return [Option.none(), state]
  const { finished, read, stored: before } = entry.value
  if (guard.status !== undefined && !guard.status.includes(before.delegation.status)) return [Option.none(), state]
  if (guard.owner !== undefined && before.owner !== guard.owner) return [lost, state]
  const delegation = applyChange(before.delegation, change)
  const ends = !finished && delegation.isFinished
  const stored: StoredDelegation = ends
    ? { ...before, delegation, revision: before.revision + 1, task: undefined, owner: undefined, leaseExpiresAt: undefined }
    : { ...before, delegation, revision: before.revision + 1 }
  if (!ends) {
    return [Option.some(stored), { ...state, byId: HashMap.set(state.byId, id, { stored, finished, read }) }]
  }
  return [
    Option.some(stored),
    evictBeyond(limits, delegation.updatedAt, {
      ...state,
      byId: HashMap.set(state.byId, id, { stored, finished: true, read }),
      finished: Fifo.push(state.finished, id),
      unread: read ? state.unread : state.unread + 1
    })
  ]
}

const markRead = (state: State, ids: ReadonlyArray<string>): State => {
  let { byId, unread } = state
  for (let i = 0; i < ids.length && unread > 0; i++) {
    const entry = HashMap.get(byId, ids[i]!)
    if (Option.isSome(entry) && entry.value.finished && !entry.value.read) {
      byId = HashMap.set(byId, ids[i]!, { ...entry.value, read: true })
      unread--
    }
  }
  return byId === state.byId ? state : { ...state, byId, unread }
}

/** Mutable only while one eviction pass runs over it. */
interface Pass {
  byId: HashMap.HashMap<string, Entry>
  keys: HashMap.HashMap<string, string>
  unread: number
  finished: Fifo.Fifo<string>
  held: Fifo.Fifo<string>
  evicted: HashMap.HashMap<string, Eviction>
  evictedOrder: Fifo.Fifo<string>
}

/** Evicts while more than `history` finished are kept: first those read or past retention, then beyond `cap`. */
const evictBeyond = (limits: Limits, now: DateTime.Utc, state: State): State => {
  const pass: Pass = { ...state }
  const mayGo = (id: string) => {
    const entry = HashMap.unsafeGet(pass.byId, id)
    return entry.read || now.epochMillis - entry.stored.delegation.updatedAt.epochMillis >= limits.retentionMillis
  }
  while (pass.finished.size + pass.held.size > limits.history) {
    pass.held = Fifo.normalize(pass.held)
    const oldestHeld = Fifo.peek(pass.held)
    if (oldestHeld !== undefined && mayGo(oldestHeld)) {
      evictOldestHeld(limits, pass, now, "history")
      continue
    }
    const next = Fifo.pop(pass.finished)
    if (next !== undefined) {
      pass.finished = next[1]
      if (mayGo(next[0])) evict(limits, pass, next[0], now, "history")
      else pass.held = Fifo.push(pass.held, next[0])
      continue
    }
    if (pass.held.size > limits.cap) {
      evictOldestHeld(limits, pass, now, "cap")
      continue
    }
    break
  }
  // Every stored id is in the creation order, so the rest of it is evicted ids. Once they are most of
  // it, rebuild it: linear, and rare enough to be O(1) per eviction.
  const byId = pass.byId
  const gone = state.created.size - HashMap.size(byId)
  const created = gone > 64 && gone * 2 > state.created.size
    ? Fifo.fromArray(Fifo.toArray(state.created).filter((id) => HashMap.has(byId, id)))
    : state.created
  return { ...state, ...pass, created }
}

const evictOldestHeld = (limits: Limits, pass: Pass, now: DateTime.Utc, reason: Eviction["reason"]) => {
  const oldest = Fifo.pop(pass.held)
  if (oldest === undefined) return
  pass.held = oldest[1]
  evict(limits, pass, oldest[0], now, reason)
}

const evict = (limits: Limits, pass: Pass, id: string, at: DateTime.Utc, reason: Eviction["reason"]) => {
  const { read, stored } = HashMap.unsafeGet(pass.byId, id)
  if (!read) pass.unread--
  if (stored.idempotencyKey !== undefined) {
    const key = keyOf(stored.origin, stored.idempotencyKey)
    if (Option.contains(HashMap.get(pass.keys, key), id)) pass.keys = HashMap.remove(pass.keys, key)
  }
  pass.byId = HashMap.remove(pass.byId, id)
  pass.evicted = HashMap.set(pass.evicted, id, { at, reason })
  pass.evictedOrder = Fifo.push(pass.evictedOrder, id)
  if (pass.evictedOrder.size > limits.cap) {
    const forgotten = Fifo.pop(pass.evictedOrder)
    if (forgotten === undefined) return
    pass.evictedOrder = forgotten[1]
    pass.evicted = HashMap.remove(pass.evicted, forgotten[0])
  }
}
