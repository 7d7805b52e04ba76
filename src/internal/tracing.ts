/**
 * Small helpers over Effect's `Tracer` for the delegation program.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import type { Tracer } from "effect"

/**
 * Adds an event to the current span, if there is one.
 *
 * @internal
 */
export const spanEvent = (name: string, attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.currentSpan.pipe(
    Effect.flatMap((span) => Effect.map(Clock.currentTimeNanos, (now) => span.event(name, now, attributes))),
    Effect.ignore
  )

/**
 * The trace id of the current span, or `""` when there is none.
 *
 * @internal
 */
export const currentTraceId: Effect.Effect<string> = Effect.currentSpan.pipe(
  Effect.map((span) => span.traceId),
  Effect.orElseSucceed(() => "")
)

/**
 * The W3C `traceparent` naming a span.
 *
 * @internal
 */
export const traceparentOf = (span: Tracer.Span): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
