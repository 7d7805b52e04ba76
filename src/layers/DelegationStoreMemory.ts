/**
 * The default `DelegationStore`: a `Ref` in memory, keeping every unfinished delegation
 * and at most `history` finished ones (the oldest finished are evicted first).
 *
 * `get` is a hash lookup; `list` walks the ids in creation order; eviction takes the
 * oldest finished id from a queue, so no operation scans the store. An evicted id stays
 * in the creation order until the next compaction, and `list` skips it.
 *
 * @since 0.2.0
 */
import { Array as Arr, Effect, HashMap, Layer, Option, Ref } from "effect"
import * as Fifo from "../internal/fifo.js"
import type { Delegation } from "../services/Delegations.js"
import { DelegationStore } from "../services/DelegationStore.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Finished delegations kept (`DELEGATION_HISTORY`); pending, running and queued ones are never evicted. */
  readonly history: number
}

interface Entry {
  readonly delegation: Delegation
  /** Already in the finished queue. */
  readonly finished: boolean
}

interface State {
  readonly byId: HashMap.HashMap<string, Entry>
  /** Every id in creation order, evicted ones included until the next compaction. */
  readonly created: Fifo.Fifo<string>
  /** Finished ids still stored, oldest finished first. */
  readonly finished: Fifo.Fifo<string>
}

const initial: State = { byId: HashMap.empty(), created: Fifo.empty(), finished: Fifo.empty() }

/**
 * Builds an empty store.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<DelegationStore["Type"]> =>
  Effect.map(Ref.make(initial), (ref) =>
    DelegationStore.of({
      insert: (delegation) =>
        Ref.update(ref, (state) => ({
          ...state,
          byId: HashMap.set(state.byId, delegation.id, { delegation, finished: false }),
          created: Fifo.push(state.created, delegation.id)
        })),
      get: (id) => Effect.map(Ref.get(ref), (state) => Option.map(HashMap.get(state.byId, id), (entry) => entry.delegation)),
      update: (id, f) => Ref.modify(ref, (state) => updated(options.history, state, id, f)),
      list: Effect.map(Ref.get(ref), (state) =>
        Arr.filterMap(Fifo.toArray(state.created), (id) =>
          Option.map(HashMap.get(state.byId, id), (entry) => entry.delegation)))
    }))

/**
 * The store as a layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<DelegationStore> => Layer.effect(DelegationStore, make(options))

const updated = (
  history: number,
  state: State,
  id: string,
  f: (delegation: Delegation) => Delegation
): readonly [Option.Option<Delegation>, State] => {
  const entry = HashMap.get(state.byId, id)
  if (Option.isNone(entry)) return [Option.none(), state]
  const { delegation: before, finished } = entry.value
  const delegation = f(before)
  if (delegation === before) return [Option.none(), state]
  if (finished || !delegation.isFinished) {
    return [Option.some(delegation), { ...state, byId: HashMap.set(state.byId, id, { delegation, finished }) }]
  }
  return [Option.some(delegation), evictBeyond(history, {
    byId: HashMap.set(state.byId, id, { delegation, finished: true }),
    created: state.created,
    finished: Fifo.push(state.finished, id)
  })]
}

const evictBeyond = (history: number, state: State): State => {
  let { byId, finished } = state
  while (finished.size > history) {
    const oldest = Fifo.pop(finished)
    if (oldest === undefined) break
    byId = HashMap.remove(byId, oldest[0])
    finished = oldest[1]
  }
  // Every stored id is in the creation order, so the rest of it is evicted ids. Once they are most of
  // it, rebuild it: linear, and rare enough to be O(1) per eviction.
  const evicted = state.created.size - HashMap.size(byId)
  const created = evicted > 64 && evicted * 2 > state.created.size
    ? Fifo.fromArray(Fifo.toArray(state.created).filter((id) => HashMap.has(byId, id)))
    : state.created
  return { byId, created, finished }
}
