/**
 * The `Ref`-backed delegation store.
 *
 * `status(id)` is a hash lookup; `list` walks a creation-ordered tree; eviction
 * pops the oldest finished entry from a second tree, so no operation scans.
 *
 * @since 0.1.0
 */
import { Effect, HashMap, Option, Order, RedBlackTree, Ref } from "effect"
import type { Delegation, DelegationId } from "../services/Delegations.js"

interface Entry {
  readonly delegation: Delegation
  readonly seq: number
  /** Position in the finished tree, once finished. */
  readonly finishedSeq: number | undefined
}

interface State {
  readonly byId: HashMap.HashMap<string, Entry>
  readonly order: RedBlackTree.RedBlackTree<number, DelegationId>
  readonly finished: RedBlackTree.RedBlackTree<number, DelegationId>
  readonly seq: number
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
  Ref.make<State>({
    byId: HashMap.empty(),
    order: RedBlackTree.empty(Order.number),
    finished: RedBlackTree.empty(Order.number),
    seq: 0
  }).pipe(Effect.map(makeWith(history)))

const makeWith = (history: number) => (ref: Ref.Ref<State>): DelegationStore => ({
  insert: (delegation) =>
    Ref.update(ref, (state) => {
      const seq = state.seq + 1
      return {
        byId: HashMap.set(state.byId, delegation.id, { delegation, seq, finishedSeq: undefined }),
        order: RedBlackTree.insert(state.order, seq, delegation.id),
        finished: state.finished,
        seq
      }
    }),

  get: (id) => Ref.get(ref).pipe(Effect.map((state) => Option.map(HashMap.get(state.byId, id), entryDelegation))),

  update: (id, f) =>
    Ref.modify(ref, (state) => {
      const found = HashMap.get(state.byId, id)
      if (Option.isNone(found)) return [Option.none(), state]
      const entry = found.value
      const delegation = f(entry.delegation)
      if (delegation === entry.delegation) return [Option.none(), state]
      if (entry.finishedSeq !== undefined || !delegation.isFinished) {
        const byId = HashMap.set(state.byId, id, { ...entry, delegation })
        return [Option.some(delegation), { ...state, byId }]
      }
      const seq = state.seq + 1
      let next: State = {
        byId: HashMap.set(state.byId, id, { delegation, seq: entry.seq, finishedSeq: seq }),
        order: state.order,
        finished: RedBlackTree.insert(state.finished, seq, delegation.id),
        seq
      }
      while (RedBlackTree.size(next.finished) > history) next = evictOldest(next)
      return [Option.some(delegation), next]
    }),

  list: Ref.get(ref).pipe(Effect.map((state) => {
    const out: Array<Delegation> = []
    for (const id of RedBlackTree.values(state.order)) {
      const entry = HashMap.get(state.byId, id)
      if (Option.isSome(entry)) out.push(entry.value.delegation)
    }
    return out
  })),

  size: Ref.get(ref).pipe(Effect.map((state) => HashMap.size(state.byId)))
})

const entryDelegation = (entry: Entry): Delegation => entry.delegation

const evictOldest = (state: State): State => {
  const first = RedBlackTree.first(state.finished)
  if (Option.isNone(first)) return state
  const [finishedSeq, id] = first.value
  const entry = HashMap.get(state.byId, id)
  return {
    byId: HashMap.remove(state.byId, id),
    order: Option.isSome(entry) ? RedBlackTree.removeFirst(state.order, entry.value.seq) : state.order,
    finished: RedBlackTree.removeFirst(state.finished, finishedSeq),
    seq: state.seq
  }
}
