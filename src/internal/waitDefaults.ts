/**
 * Defaults of waiting on the platform, shared by the layer and the engine.
 *
 * @internal
 */
import { Duration } from "effect"

/** `DELEGATION_QUEUED_TIMEOUT` when none is configured: the platform's own stale-queue drop. */
export const QUEUED_TIMEOUT: Duration.Duration = Duration.minutes(60)

/** The reconciler's pace when none is configured: 2 seconds doubling up to 30 seconds (the platform's heartbeat). */
export const RECONCILE_INTERVAL = { initial: Duration.seconds(2), max: Duration.seconds(30) } as const
