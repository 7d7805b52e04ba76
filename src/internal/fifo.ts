/**
 * A persistent first-in-first-out queue of ids over two Effect `List`s (a banker's queue):
 * `push` conses onto the back, `pop` takes from the front and reverses the back into a new
 * front once it runs out. One list cell per id, where a sorted map keyed by a sequence
 * number costs a tree path per insertion and removal.
 *
 * @internal
 */
import { List } from "effect"

/** @internal */
export interface Fifo<A> {
  /** Oldest first. */
  readonly front: List.List<A>
  /** Newest first. */
  readonly back: List.List<A>
  readonly size: number
}

/** @internal */
export const empty = <A>(): Fifo<A> => ({ front: List.nil(), back: List.nil(), size: 0 })

/** @internal */
export const push = <A>(queue: Fifo<A>, value: A): Fifo<A> => ({
  front: queue.front,
  back: List.prepend(queue.back, value),
  size: queue.size + 1
})

/** The oldest value and the queue without it; `undefined` when the queue is empty. @internal */
export const pop = <A>(queue: Fifo<A>): readonly [A, Fifo<A>] | undefined => {
  if (List.isCons(queue.front)) return [queue.front.head, { ...queue, front: queue.front.tail, size: queue.size - 1 }]
  const front = List.reverse(queue.back)
  if (List.isNil(front)) return undefined
  return [front.head, { front: front.tail, back: List.nil(), size: queue.size - 1 }]
}

/** Oldest first. @internal */
export const toArray = <A>(queue: Fifo<A>): Array<A> => [...queue.front, ...List.reverse(queue.back)]

/** @internal */
export const fromArray = <A>(values: ReadonlyArray<A>): Fifo<A> => ({
  front: List.fromIterable(values),
  back: List.nil(),
  size: values.length
})

/** The same queue with its oldest value at the head of `front` (when not empty), so `peek` is O(1). @internal */
export const normalize = <A>(queue: Fifo<A>): Fifo<A> =>
  List.isNil(queue.front) && List.isCons(queue.back)
    ? { front: List.reverse(queue.back), back: List.nil(), size: queue.size }
    : queue

/** The oldest value of a normalized queue, left in place; `undefined` when the queue is empty. @internal */
export const peek = <A>(queue: Fifo<A>): A | undefined => List.isCons(queue.front) ? queue.front.head : undefined
