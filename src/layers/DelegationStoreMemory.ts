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
 * `get` is a hash lookup; `list` walks the ids in creation order; eviction takes the oldest
 * finished id from a queue, so no operation scans the store. An evicted id stays in the
 * creation order until the next compaction, and `list` skips it.
 *
 * @since 0.2.0
 */
import { Array as Arr, DateTime, Duration, Effect, HashMap, Layer, Option, Ref } from "effect"
import * as Fifo from "../internal/fifo.js"
import type { Delegation } from "../services/Delegations.js"
import type { Eviction } from "../services/DelegationStore.js"
import { DelegationStore } from "../services/DelegationStore.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
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
 * Default `cap`.
 *
 * @since 0.3.0
 * @category constants
 */
export const DEFAULT_CAP = 10_000

/**
 * Default `retention`.
 *
 * @since 0.3.0
 * @category constants
 */
export const DEFAULT_RETENTION: Duration.Duration = Duration.hours(1)

interface Entry {
  readonly delegation: Delegation
  /** Already in a finished queue. */
  readonly finished: boolean
  /** Its final state was handed to a reader. */
  readonly read: boolean
}

interface State {
  readonly byId: HashMap.HashMap<string, Entry>
  /** Every id in creation order, evicted ones included until the next compaction. */
  readonly created: Fifo.Fifo<string>
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
  const limits: Limits = {
    history: options.history,
    cap: Math.max(options.history, options.cap ?? DEFAULT_CAP),
    retentionMillis: Duration.toMillis(options.retention ?? DEFAULT_RETENTION)
  }
  return Effect.map(Ref.make(initial), (ref) =>
    DelegationStore.of({
      insert: (delegation) =>
        Ref.update(ref, (state) => ({
          ...state,
          byId: HashMap.set(state.byId, delegation.id, { delegation, finished: false, read: false }),
          created: Fifo.push(state.created, delegation.id)
        })),
      get: (id) => Effect.map(Ref.get(ref), (state) => Option.map(HashMap.get(state.byId, id), (entry) => entry.delegation)),
      update: (id, f) => Ref.modify(ref, (state) => updated(limits, state, id, f)),
      list: Effect.map(Ref.get(ref), (state) =>
        Arr.filterMap(Fifo.toArray(state.created), (id) =>
          Option.map(HashMap.get(state.byId, id), (entry) => entry.delegation))),
      markRead: (ids) => Ref.update(ref, (state) => markRead(state, ids)),
      evicted: (id) => Effect.map(Ref.get(ref), (state) => HashMap.get(state.evicted, id))
    }))
}

/**
 * The store as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<DelegationStore> => Layer.effect(DelegationStore, make(options))

const updated = (
  limits: Limits,
  state: State,
  id: string,
  f: (delegation: Delegation) => Delegation
): readonly [Option.Option<Delegation>, State] => {
  const entry = HashMap.get(state.byId, id)
  if (Option.isNone(entry)) return [Option.none(), state]
  const { delegation: before, finished, read } = entry.value
  const delegation = f(before)
  if (delegation === before) return [Option.none(), state]
  if (finished || !delegation.isFinished) {
    return [Option.some(delegation), { ...state, byId: HashMap.set(state.byId, id, { delegation, finished, read }) }]
  }
  return [
    Option.some(delegation),
    evictBeyond(limits, delegation.updatedAt, {
      ...state,
      byId: HashMap.set(state.byId, id, { delegation, finished: true, read }),
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
    return entry.read || now.epochMillis - entry.delegation.updatedAt.epochMillis >= limits.retentionMillis
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
  return { ...pass, created }
}

const evictOldestHeld = (limits: Limits, pass: Pass, now: DateTime.Utc, reason: Eviction["reason"]) => {
  const oldest = Fifo.pop(pass.held)
  if (oldest === undefined) return
  pass.held = oldest[1]
  evict(limits, pass, oldest[0], now, reason)
}

const evict = (limits: Limits, pass: Pass, id: string, at: DateTime.Utc, reason: Eviction["reason"]) => {
  if (!HashMap.unsafeGet(pass.byId, id).read) pass.unread--
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
