/**
 * A bound on how many delegations run at once; the others wait in arrival order.
 *
 * Effect's `Semaphore` wakes every waiter on each release and lets them race for the
 * permit, which is quadratic with thousands waiting. This gate hands a freed place to
 * the oldest waiter directly, and ties each place to the fiber that holds it: the
 * place is given back when that fiber ends, whatever the exit, with no finalizer
 * step on the way.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export interface Gate {
  /**
   * Runs `effect` once a place is free. The place is held until the calling fiber
   * ends, so call it from a fiber that runs this one piece of work.
   */
  readonly enter: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

interface Waiter {
  admitted: boolean
  abandoned: boolean
  readonly admit: () => void
}

/**
 * A gate with `places` places (an integer >= 1).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (places: number): Gate => {
  let free = places
  let queue: Array<Waiter | undefined> = []
  let head = 0

  const leave = (): void => {
    while (head < queue.length) {
      const next = queue[head]!
      queue[head++] = undefined
      if (!next.abandoned) return next.admit()
    }
    queue = []
    head = 0
    free++
  }

  const enqueue = (waiter: Waiter): void => {
    // Drop the consumed front now and then, so a queue that never empties does not grow for ever.
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head)
      head = 0
    }
    queue.push(waiter)
  }

  return {
    enter: (effect) =>
      Effect.withFiberRuntime((fiber) => {
        if (free > 0) {
          free--
          fiber.addObserver(leave)
          return effect
        }
        // No canceller (it would cost an `onInterrupt` per waiter): the fiber's end settles the place
        // instead. Ending before admission is an interruption, and the waiter is skipped; ending after
        // it (even when the interruption won the race with the resume) gives the place on.
        const wait = Effect.async<void>((resume) => {
          const waiter: Waiter = {
            admitted: false,
            abandoned: false,
            admit: () => {
              waiter.admitted = true
              resume(Effect.void)
            }
          }
          fiber.addObserver(() => {
            if (waiter.admitted) leave()
            else waiter.abandoned = true
          })
          enqueue(waiter)
        })
        return Effect.zipRight(wait, effect)
      })
  }
}
