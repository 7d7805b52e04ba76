/**
 * Audit trail of delegation decisions and outcomes.
 *
 * @since 0.1.0
 */
import { Context, DateTime } from "effect"
import type { Effect } from "effect"

/**
 * Outcomes the delegation runtime writes.
 *
 * @since 0.1.0
 * @category models
 */
export type AuditOutcome = "dispatched" | "queued" | "success" | "failure" | "denied"

/**
 * What a caller reports; the sink adds `timestamp`, `workspace_id` and `actor`.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuditEvent {
  readonly eventType: "delegation" | "rbac"
  readonly action: string
  /** The target workspace. */
  readonly resource: string
  readonly outcome: AuditOutcome
  /** The OpenTelemetry trace id, or `""` when no span is recording. */
  readonly traceId: string
  readonly delegationId?: string | undefined
  /** Extra fields; they never override the standard ones. */
  readonly extra?: Readonly<Record<string, unknown>> | undefined
}

/**
 * One audit line as written by the sinks (field names of the original audit log).
 *
 * @since 0.1.0
 * @category models
 */
export interface AuditRecord {
  readonly timestamp: string
  readonly event_type: string
  readonly workspace_id: string
  readonly actor: string
  readonly action: string
  readonly resource: string
  readonly outcome: string
  readonly trace_id: string
  readonly [extra: string]: unknown
}

/**
 * Builds the record for an event; standard keys win over extras.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRecord = (workspaceId: string, event: AuditEvent, now: DateTime.Utc): AuditRecord => {
  const record: Record<string, unknown> = {
    timestamp: DateTime.formatIso(now),
    event_type: event.eventType,
    workspace_id: workspaceId,
    actor: workspaceId,
    action: event.action,
    resource: event.resource,
    outcome: event.outcome,
    trace_id: event.traceId
  }
  if (event.delegationId !== undefined) record["delegation_id"] = event.delegationId
  for (const key in event.extra) {
    if (!(key in record)) record[key] = event.extra[key]
  }
  return record as AuditRecord
}

/**
 * Where audit events go. Writing never fails a delegation.
 *
 * @since 0.1.0
 * @category tags
 */
export class Audit extends Context.Tag("effect-a2a-delegation/Audit")<Audit, {
  readonly log: (event: AuditEvent) => Effect.Effect<void>
}>() {}
