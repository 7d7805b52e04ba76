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
  readonly admit: () => void
  abandoned: boolean
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
        const wait = Effect.async<void>((resume) => {
          const waiter: Waiter = {
            abandoned: false,
            // The place is the fiber's from here on: if an interruption wins the race with this
            // resume, the fiber still ends, and its end gives the place on.
            admit: () => {
              fiber.addObserver(leave)
              resume(Effect.void)
            }
          }
          enqueue(waiter)
          return Effect.sync(() => {
            waiter.abandoned = true
          })
        })
        return Effect.zipRight(wait, effect)
      })
  }
}
