/**
 * Warnings summarised per kind: repeated failures of one kind (a platform call, an audit write,
 * the rate limit) make one `WARN` line, then at most one more per interval with how many there
 * were and the last of them; every occurrence is logged at Debug with its full cause. A burst of
 * thousands of failures prints a line or two, not thousands.
 *
 * @internal
 */
import { Duration, Effect, FiberSet } from "effect"
import type { Cause, Scope } from "effect"

/**
 * @internal
 */
export interface Warnings {
  /** Logs `message` at Debug (with `cause`), and as a warning when none of `kind` was printed in the interval. */
  readonly warn: (
    kind: string,
    message: string,
    options?: {
      readonly cause?: Cause.Cause<unknown> | undefined
      readonly annotations?: Readonly<Record<string, unknown>> | undefined
    }
  ) => Effect.Effect<void>
}

/**
 * How often a kind may print a warning by default.
 *
 * @internal
 */
export const DEFAULT_INTERVAL: Duration.Duration = Duration.minutes(1)

interface Kind {
  /** Occurrences not printed since the last warning of this kind. */
  held: number
  last: string
}

/**
 * Summarised warnings whose pending counts are printed by fibers of the current scope.
 *
 * @internal
 */
export const make = (interval: Duration.Duration = DEFAULT_INTERVAL): Effect.Effect<Warnings, never, Scope.Scope> =>
  Effect.map(FiberSet.make(), (fibers): Warnings => {
    const kinds = new Map<string, Kind>()
    const label = Duration.format(interval)

    // At the end of each interval with occurrences held back, one line says how many; an interval
    // without any ends the kind's quiet period.
    const summarise = (kind: string, state: Kind): Effect.Effect<void> =>
      Effect.zipRight(
        Effect.sleep(interval),
        Effect.suspend(() => {
          if (state.held === 0) {
            kinds.delete(kind)
            return Effect.void
          }
          const line = `${kind}: ${state.held} more in the last ${label} (last: ${state.last})`
          state.held = 0
          return Effect.zipRight(Effect.logWarning(line), summarise(kind, state))
        })
      )

    return {
      warn: (kind, message, options = {}) => {
        const annotated = <A>(effect: Effect.Effect<A>) =>
          options.annotations === undefined ? effect : Effect.annotateLogs(effect, options.annotations)
        const debug = annotated(options.cause === undefined ? Effect.logDebug(message) : Effect.logDebug(message, options.cause))
        return Effect.zipRight(
          debug,
          Effect.suspend(() => {
            const state = kinds.get(kind)
            if (state !== undefined) {
              state.held++
              state.last = message
              return Effect.void
            }
            const fresh: Kind = { held: 0, last: message }
            kinds.set(kind, fresh)
            // The summary fiber carries none of this occurrence's annotations, and stays interruptible
            // even when forked from the uninterruptible recording of an outcome, so closing can stop it.
            return Effect.zipRight(
              annotated(Effect.logWarning(message)),
              FiberSet.run(fibers, Effect.interruptible(summarise(kind, fresh)))
            )
          })
        )
      }
    }
  })

/**
 * Warnings printed as they come, for code run without a layer's summary (tests of single steps).
 *
 * @internal
 */
export const unsummarised: Warnings = {
  warn: (_kind, message, options = {}) =>
    Effect.zipRight(
      Effect.logWarning(message),
      options.cause === undefined ? Effect.void : Effect.logDebug(message, options.cause)
    ).pipe(Effect.annotateLogs(options.annotations ?? {}))
}
