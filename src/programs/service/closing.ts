/**
 * The bound on closing a `Delegations` layer (`DELEGATION_SHUTDOWN_TIMEOUT`).
 *
 * Closing interrupts every running delegation; each records its failed (`interrupted`) state in
 * the store at once, then tells the platform (update, notify). Against a platform that hangs,
 * those calls would each wait for the mirror timeout, behind the socket pool, and closing (and
 * every caller of `await`) with them. Near the end of the bound, the platform calls still running
 * are abandoned: the local states are already recorded, and one warning says how many were cut.
 *
 * @internal
 */
import { Deferred, Duration, Effect, Fiber, MutableRef, Option } from "effect"
import type { Scope } from "effect"

/**
 * `DELEGATION_SHUTDOWN_TIMEOUT` when none is set.
 *
 * @internal
 */
export const DEFAULT_SHUTDOWN_TIMEOUT: Duration.Duration = Duration.seconds(5)

/** @internal */
export interface Closing {
  /**
   * Runs the platform calls of a delegation whose outcome is already stored: once closing has
   * started, until they end or the bound is nearly used up, whichever is first. While the layer is
   * open they run as they are (a race forks two fibers: about 50 us a delegation), so calls already
   * in flight when closing starts end within their own timeout (the mirror's 10 s).
   */
  readonly abandonable: <R>(effect: Effect.Effect<void, never, R>) => Effect.Effect<void, never, R>
  /**
   * Runs `effect` until it ends or the bound is nearly used up (not at all once it is), without
   * counting it as an abandoned delegation: for the layer's own last work (the platform writes owed).
   */
  readonly bounded: (effect: Effect.Effect<void>) => Effect.Effect<void>
  /** Starts the bound; a finalizer that runs before the delegations are interrupted. */
  readonly start: Effect.Effect<void>
}

/**
 * The bound of one layer; its timer is stopped (and what was abandoned is logged) by a finalizer of
 * the surrounding scope, so create it before the finalizers that interrupt the delegations.
 *
 * @internal
 */
export const make = (
  bound: Duration.Duration | undefined
): Effect.Effect<Closing, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = bound ?? DEFAULT_SHUTDOWN_TIMEOUT
    // Cutting the abandoned calls takes time too (0.3 s for 500 on a busy 2-core VM): a fifth of the
    // bound, at most a second, is kept for it, so that closing returns within the bound.
    const abandonAfter = Duration.subtract(timeout, Duration.min(Duration.times(timeout, 0.2), Duration.seconds(1)))
    const passed = yield* Deferred.make<void>()
    const timer = MutableRef.make(Option.none<Fiber.RuntimeFiber<void>>())
    const cut = MutableRef.make(0)
    const start = Effect.flatMap(
      Effect.forkDaemon(
        Effect.interruptible(Effect.zipRight(Effect.sleep(abandonAfter), Deferred.succeed(passed, undefined))).pipe(
          Effect.asVoid
        )
      ),
      (fiber) => Effect.sync(() => MutableRef.set(timer, Option.some(fiber)))
    )
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Option.match(MutableRef.get(timer), { onNone: () => Effect.void, onSome: Fiber.interrupt }),
        Effect.suspend(() => {
          const count = MutableRef.get(cut)
          return count === 0 ? Effect.void : Effect.logWarning(
            `closing reached its bound, DELEGATION_SHUTDOWN_TIMEOUT (${Duration.format(timeout)}): the platform ` +
              `update/notify of ${count} delegation(s) was abandoned; their failed (interrupted) state is recorded locally`
          )
        })
      )
    )
    const abandoned = Effect.zipRight(Deferred.await(passed), Effect.sync(() => MutableRef.increment(cut)))
    // Both sides of the race stay interruptible inside the uninterruptible recording of an outcome, so
    // the loser is always cut.
    const abandonable = <R>(effect: Effect.Effect<void, never, R>): Effect.Effect<void, never, R> =>
      Effect.suspend(() =>
        Option.isNone(MutableRef.get(timer))
          ? effect
          : Effect.raceFirst(Effect.interruptible(effect), Effect.interruptible(abandoned))
      )
    const bounded = (effect: Effect.Effect<void>): Effect.Effect<void> =>
      Effect.suspend(() =>
        Option.isNone(MutableRef.get(timer))
          ? effect
          : Effect.flatMap(Deferred.isDone(passed), (over) =>
            over ? Effect.void : Effect.raceFirst(Effect.interruptible(effect), Effect.interruptible(Deferred.await(passed))))
      )
    return { abandonable, bounded, start }
  })
