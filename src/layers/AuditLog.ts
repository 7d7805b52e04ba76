/**
 * Audit events as structured Effect log lines (the default sink). They are written at Debug
 * unless another level is asked for, so a host's console is not filled with one line per event.
 *
 * @since 0.1.0
 */
import { DateTime, Effect, FiberRef, Layer, LogLevel } from "effect"
import { Audit, makeRecord } from "../services/Audit.js"

/**
 * Builds the sink; every record becomes one log line annotated with its fields.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly workspaceId: string; readonly level?: LogLevel.LogLevel | undefined }) => {
  const level = options.level ?? LogLevel.Debug
  return Audit.of({
    log: (event) =>
      // Building the annotated record is the expensive part: skip it when the line would be dropped.
      Effect.flatMap(FiberRef.get(FiberRef.currentMinimumLogLevel), (minimum) =>
        LogLevel.lessThan(level, minimum)
          ? Effect.void
          : Effect.flatMap(DateTime.now, (now) =>
            Effect.logWithLevel(level, `audit ${event.eventType} ${event.outcome}`).pipe(
              Effect.annotateLogs(makeRecord(options.workspaceId, event, now))
            )))
  })
}

/**
 * The log sink layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: { readonly workspaceId: string; readonly level?: LogLevel.LogLevel | undefined }
): Layer.Layer<Audit> => Layer.succeed(Audit, make(options))
