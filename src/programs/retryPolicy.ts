/**
 * The host's retry schedule as the delegation program runs it.
 *
 * @internal
 */
import { Duration, Effect, Metric, Schedule, ScheduleDecision } from "effect"
import { spanEvent } from "../internal/tracing.js"
import type { A2AError, A2ATransportError } from "../services/A2ATransport.js"
import { isTransportError } from "../services/A2ATransport.js"
import * as DelegationMetrics from "../services/DelegationMetrics.js"

/**
 * The longest `Retry-After` honoured when no `retryAfterMax` is set.
 *
 * @internal
 */
export const DEFAULT_RETRY_AFTER_MAX: Duration.Duration = Duration.seconds(60)

/**
 * `schedule` over every error a send can end with: it is consulted for transport failures
 * only (as its type says), and any other error ends the retries. `Effect.retry`'s `while`
 * is checked only after the schedule has stepped, so it cannot keep other errors from it.
 */
const forTransportFailures = <Out>(
  schedule: Schedule.Schedule<Out, A2ATransportError>
): Schedule.Schedule<Out | undefined, A2AError> =>
  Schedule.makeWithState(schedule.initial, (now, error: A2AError, state) =>
    isTransportError(error)
      ? schedule.step(now, error, state)
      : Effect.succeed([state, undefined, ScheduleDecision.done] as const))

/**
 * Wraps a host's retry schedule, once per layer: `Retry-After` is a lower bound on each delay, up
 * to `retryAfterMax` (a peer cannot park a delegation, or its place under `DELEGATION_CONCURRENCY`,
 * for longer), and every retry it allows is an `a2a.retry` span event (with the delay) and counts
 * in `delegations.retries`.
 *
 * @internal
 */
export const retryPolicy = (
  schedule: Schedule.Schedule<unknown, A2ATransportError>,
  retryAfterMax: Duration.Duration
): Schedule.Schedule<unknown, A2AError> =>
  Schedule.intersect(forTransportFailures(schedule), Schedule.identity<A2AError>()).pipe(
    Schedule.modifyDelayEffect(([, error], delay) => {
      const wait = isTransportError(error) && error.retryAfterMillis !== undefined
        ? Duration.max(delay, Duration.min(Duration.millis(error.retryAfterMillis), retryAfterMax))
        : delay
      return Effect.all([
        spanEvent("a2a.retry", { "a2a.retry.delay_ms": Duration.toMillis(wait), "error.message": error.message }),
        Metric.increment(DelegationMetrics.retries)
      ]).pipe(Effect.as(wait))
    })
  )
