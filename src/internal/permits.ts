/**
 * A bound on how many delegations run at once (`DELEGATION_CONCURRENCY`); the others wait
 * in arrival order.
 *
 * The places are the items of a bounded `Queue`: taking one waits in line (takers are served
 * first come, first served), and giving one back wakes exactly one taker. Effect's `Semaphore`
 * wakes every waiter on each release and lets them race for the permit, which with 10,000
 * waiting ran out of memory.
 *
 * @internal
 */
import { Effect, Queue } from "effect"

/** @internal */
export interface Permits {
  /**
   * Runs `effect` once a place is free, and frees the place when `effect` ends, whatever its
   * exit. Waiting for a place can be interrupted.
   */
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/**
 * `count` places (an integer >= 1).
 *
 * @internal
 */
export const make = (count: number): Effect.Effect<Permits> =>
  Effect.gen(function*() {
    const places = yield* Queue.bounded<void>(count)
    yield* Queue.offerAll(places, Array.from({ length: count }, () => undefined))
    return {
      withPermit: (effect) =>
        Effect.acquireUseRelease(
          // Acquiring is uninterruptible by default; waiting in line must not be.
          Effect.interruptible(Queue.take(places)),
          () => effect,
          () => Queue.offer(places, undefined)
        )
    }
  })
