/**
 * Delegation metrics, as Effect `Metric`s: exported by whatever metrics backend
 * the host provides (for example `@effect/opentelemetry`'s `NodeSdk.layer` with a
 * `metricReader`), readable with `Metric.value` in tests.
 *
 * @since 0.1.0
 */
import { Metric, MetricBoundaries } from "effect"

const seconds = MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 16 })

/**
 * Delegations accepted by `delegate` (after RBAC and validation).
 *
 * @since 0.1.0
 * @category metrics
 */
export const started = Metric.counter("delegations.started", {
  description: "Delegations accepted and started",
  incremental: true
})

/**
 * Delegations that reached an outcome, by `outcome`: completed, failed or queued.
 * A queued delegation that is later resolved from the platform counts again under
 * its final outcome (and in `timeQueued`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const finished = Metric.counter("delegations.finished", {
  description: "Delegations that reached an outcome",
  incremental: true
})

/**
 * Send attempts (`SendMessage` / `message/send` POSTs; the resend of a version fallback is part of its attempt).
 *
 * @since 0.1.0
 * @category metrics
 */
export const attempts = Metric.counter("delegations.attempts", {
  description: "A2A message/send POSTs made",
  incremental: true
})

/**
 * Retries scheduled after transport failures.
 *
 * @since 0.1.0
 * @category metrics
 */
export const retries = Metric.counter("delegations.retries", {
  description: "Retries scheduled after transport failures",
  incremental: true
})

/**
 * Seconds from `delegate` to the first outcome (completed, failed or queued).
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeToOutcome = Metric.histogram(
  "delegations.time_to_outcome",
  seconds,
  "Seconds from delegate to completed, failed or queued"
)

/**
 * Seconds a delegation spent queued, measured when the platform resolves it.
 *
 * @since 0.1.0
 * @category metrics
 */
export const timeQueued = Metric.histogram(
  "delegations.time_queued",
  seconds,
  "Seconds a queued delegation waited until the platform resolved it"
)

/**
 * `finished`, tagged with each outcome.
 *
 * @since 0.1.0
 * @category metrics
 */
export const finishedAs = {
  completed: Metric.tagged(finished, "outcome", "completed"),
  failed: Metric.tagged(finished, "outcome", "failed"),
  queued: Metric.tagged(finished, "outcome", "queued"),
  cancelled: Metric.tagged(finished, "outcome", "cancelled")
} as const
