/**
 * Side work (audit, platform mirror) that never decides an outcome.
 *
 * @internal
 */
import { Cause, Effect, Option, Ref } from "effect"
import type { Duration } from "effect"
import type { Warnings } from "./warnings.js"

/**
 * Runs `effect` within `timeout` (when given); a failure or defect is swallowed and logged: at
 * Debug with its full cause, and as a warning, one per `label` and interval when the layer's
 * `warnings` are given (a burst of failures prints a line, not thousands). Interruption still
 * interrupts.
 *
 * @internal
 */
export const bestEffort = (
  label: string,
  options: {
    readonly timeout?: Duration.DurationInput | undefined
    /** Log annotations of the warning. */
    readonly annotations?: Readonly<Record<string, unknown>> | undefined
    /** The layer's summarised warnings. */
    readonly warnings?: Warnings | undefined
  } = {}
) =>
<E, R>(effect: Effect.Effect<void, E, R>): Effect.Effect<void, never, R> =>
  Effect.catchAllCause(
    options.timeout === undefined ? effect : Effect.asVoid(Effect.timeout(effect, options.timeout)),
    (cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
      const message = `${label} failed; the delegation outcome is unchanged`
      if (options.warnings !== undefined) {
        return options.warnings.warn(label, `${message}: ${summary(cause)}`, { cause, annotations: options.annotations })
      }
      return Effect.zipRight(
        Effect.logWarning(`${message}: ${summary(cause)}`),
        Effect.logDebug(message, cause)
      ).pipe(Effect.annotateLogs(options.annotations ?? {}))
    }
  )

/** The message of a cause's main error, on one line. */
const summary = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/\s+/g, " ")
}

/**
 * `bestEffort` for side work with an answer: `None` when it failed or ran out of time.
 *
 * @internal
 */
export const bestEffortOption = (
  label: string,
  options: {
    readonly timeout: Duration.DurationInput
    readonly annotations?: Readonly<Record<string, unknown>> | undefined
  }
) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, never, R> =>
  Effect.flatMap(Ref.make(Option.none<A>()), (answer) =>
    Effect.timeout(effect, options.timeout).pipe(
      Effect.flatMap((a) => Ref.set(answer, Option.some(a))),
      bestEffort(label, { annotations: options.annotations }),
      Effect.zipRight(Ref.get(answer))
    ))
