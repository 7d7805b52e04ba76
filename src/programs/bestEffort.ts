/**
 * Running side work (audit, platform mirror) without letting it decide anything.
 *
 * @since 0.1.0
 */
import { Cause, Effect } from "effect"
import type { Duration } from "effect"

/**
 * Runs `effect` within `timeout` (when given); a failure or defect is logged as a
 * warning and swallowed. Interruption still interrupts.
 *
 * @since 0.1.0
 * @category combinators
 */
export const bestEffort = (
  label: string,
  options: {
    readonly timeout?: Duration.DurationInput | undefined
    /** Log annotations, added only when something is logged (annotating is not free on the hot path). */
    readonly annotations?: Readonly<Record<string, unknown>> | undefined
  } = {}
) =>
<E, R>(effect: Effect.Effect<void, E, R>): Effect.Effect<void, never, R> =>
  Effect.catchAllCause(
    options.timeout === undefined ? effect : Effect.asVoid(Effect.timeout(effect, options.timeout)),
    (cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
      // A tolerated failure is one readable line; its full cause (stack included) only at Debug.
      const message = `${label} failed; the delegation outcome is unchanged`
      const logged = Effect.zipRight(
        Effect.logWarning(`${message}: ${summary(cause)}`),
        Effect.logDebug(message, cause)
      )
      return options.annotations === undefined ? logged : Effect.annotateLogs(logged, options.annotations)
    }
  )

/**
 * The message of a cause's main error, on one line.
 *
 * @since 0.1.0
 * @category utils
 */
export const summary = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/\s+/g, " ")
}

/**
 * The trace id of the current span, or `""` when none is recording.
 *
 * @since 0.1.0
 * @category tracing
 */
export const currentTraceId: Effect.Effect<string> = Effect.currentSpan.pipe(
  Effect.map((span) => span.traceId),
  Effect.orElseSucceed(() => "")
)
