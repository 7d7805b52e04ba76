/**
 * The `Ref`-backed delegation store.
 *
 * `status(id)` is a hash lookup; `list` walks the ids in creation order; eviction
 * takes the oldest finished id from a queue, so no operation scans. Both orders are
 * persistent queues (two lists), which cost one cell per id instead of a tree path
 * per insert and removal. An evicted id stays in the creation order until the next
 * compaction, and `list` skips it.
 *
 * @since 0.1.0
 */
import { Effect, HashMap, List, Option, Ref } from "effect"
import type { Delegation, DelegationId } from "../services/Delegations.js"

/** A persistent FIFO: `front` in order, `back` reversed (a banker's queue). */
interface Fifo {
  readonly front: List.List<DelegationId>
  readonly back: List.List<DelegationId>
  readonly size: number
}

const emptyFifo: Fifo = { front: List.nil(), back: List.nil(), size: 0 }

const push = (queue: Fifo, id: DelegationId): Fifo => ({
  front: queue.front,
  back: List.prepend(queue.back, id),
  size: queue.size + 1
})

/** The oldest id and the rest; the back list is reversed once for every `size` pops. */
const pop = (queue: Fifo): readonly [DelegationId, Fifo] | undefined => {
  const front = List.isCons(queue.front) ? queue.front : List.reverse(queue.back)
  if (List.isNil(front)) return undefined
  const back = List.isCons(queue.front) ? queue.back : List.nil<DelegationId>()
  return [front.head, { front: front.tail, back, size: queue.size - 1 }]
}

const toArray = (queue: Fifo): Array<DelegationId> => {
  const out = List.toArray(queue.front)
  const back = List.toArray(queue.back)
  for (let i = back.length - 1; i >= 0; i--) out.push(back[i]!)
  return out
}

const fromArray = (ids: ReadonlyArray<DelegationId>): Fifo => ({
  front: List.fromIterable(ids),
  back: List.nil(),
  size: ids.length
})

interface Entry {
  readonly delegation: Delegation
  /** Already counted in the finished queue. */
  readonly finished: boolean
}

interface State {
  readonly byId: HashMap.HashMap<string, Entry>
  /** Every id in creation order, evicted ones included until the next compaction. */
  readonly order: Fifo
  /** Finished ids still stored, oldest finished first. */
  readonly finished: Fifo
}

/**
 * Operations on the store of one `Delegations` layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface DelegationStore {
  readonly insert: (delegation: Delegation) => Effect.Effect<void>
  readonly get: (id: string) => Effect.Effect<Option.Option<Delegation>>
  /**
   * Applies `f` atomically and returns the new value. When `f` returns its input
   * unchanged nothing is written and `None` is returned, so callers learn whether
   * they made the transition. Evicts the oldest finished entries beyond the history size.
   */
  readonly update: (
    id: string,
    f: (delegation: Delegation) => Delegation
  ) => Effect.Effect<Option.Option<Delegation>>
  /** Oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<Delegation>>
  readonly size: Effect.Effect<number>
}

/**
 * Makes an empty store that keeps at most `history` finished delegations.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (history: number): Effect.Effect<DelegationStore> =>
  Ref.make<State>({ byId: HashMap.empty(), order: emptyFifo, finished: emptyFifo }).pipe(
    Effect.map(makeWith(history))
  )

const makeWith = (history: number) => (ref: Ref.Ref<State>): DelegationStore => ({
  insert: (delegation) =>
    Ref.update(ref, (state) => ({
      byId: HashMap.set(state.byId, delegation.id, { delegation, finished: false }),
      order: push(state.order, delegation.id),
      finished: state.finished
    })),

  get: (id) => Ref.get(ref).pipe(Effect.map((state) => Option.map(HashMap.get(state.byId, id), entryDelegation))),

  update: (id, f) =>
    Ref.modify(ref, (state) => {
      const found = HashMap.get(state.byId, id)
      if (Option.isNone(found)) return [Option.none(), state]
      const entry = found.value
      const delegation = f(entry.delegation)
      if (delegation === entry.delegation) return [Option.none(), state]
      if (entry.finished || !delegation.isFinished) {
        const byId = HashMap.set(state.byId, id, { delegation, finished: entry.finished })
        return [Option.some(delegation), { ...state, byId }]
      }
      const next: State = {
        byId: HashMap.set(state.byId, id, { delegation, finished: true }),
        order: state.order,
        finished: push(state.finished, delegation.id)
      }
      return [Option.some(delegation), evictBeyond(history, next)]
    }),

  list: Ref.get(ref).pipe(Effect.map((state) => {
    const out: Array<Delegation> = []
    for (const id of toArray(state.order)) {
      const entry = HashMap.get(state.byId, id)
      if (Option.isSome(entry)) out.push(entry.value.delegation)
    }
    return out
  })),

  size: Ref.get(ref).pipe(Effect.map((state) => HashMap.size(state.byId)))
})

const entryDelegation = (entry: Entry): Delegation => entry.delegation

const evictBeyond = (history: number, state: State): State => {
  let { byId, finished } = state
  while (finished.size > history) {
    const oldest = pop(finished)
    if (oldest === undefined) break
    byId = HashMap.remove(byId, oldest[0])
    finished = oldest[1]
  }
  // Every stored id is in the creation order, so the rest of it is evicted ids. Once they are most of
  // it, rebuild it: linear, and rare enough to be O(1) per eviction.
  const evicted = state.order.size - HashMap.size(byId)
  const order = evicted > 64 && evicted * 2 > state.order.size
    ? fromArray(toArray(state.order).filter((id) => HashMap.has(byId, id)))
    : state.order
  return { byId, order, finished }
}
