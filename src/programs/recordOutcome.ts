/**
 * Recording how a delegation's work ended: the final state in the store, then the metrics,
 * the audit event and the platform mirror (update, then notify).
 *
 * @internal
 */
import { Cause, DateTime, Effect, Exit, Metric, MutableHashSet, MutableRef, Option } from "effect"
import { bestEffort } from "../internal/bestEffort.js"
import type { Delegation, DelegationFailure } from "../services/Delegations.js"
import { DelegationAborted } from "../services/Delegations.js"
import * as DelegationMetrics from "../services/DelegationMetrics.js"
import type { DelegationChange, DelegationInput, Engine } from "./engine.js"
import { ACTIVE, auditDelegation, deliverWrite, isUnfinished, mirrorOptions, updateDelegation } from "./engine.js"
import type { Outcome } from "./settleAnswer.js"

/**
 * Stores the outcome of `exit` (a defect becomes a `DelegationAborted` failure, and so does an
 * interruption) unless the delegation has already ended, and announces it. Returns the final
 * state, or `None` when there was nothing left to record.
 *
 * @internal
 */
export const recordOutcome = Effect.fnUntraced(function*(
  engine: Engine,
  input: DelegationInput,
  exit: Exit.Exit<Outcome, DelegationFailure>
) {
  // `cancel` interrupted it, and records the outcome itself.
  if (Exit.isInterrupted(exit) && MutableHashSet.has(engine.cancelling, input.id)) return Option.none<Delegation>()
  // A layer over a shared store is closing: its lease is released, and another replica finishes it.
  if (Exit.isInterrupted(exit) && MutableRef.get(engine.releasing)) return Option.none<Delegation>()
  const final = yield* updateDelegation(engine, input.id, changeOf(exit), ACTIVE)
  // A delegation handed to the platform is not over: the reconciler announces its outcome.
  if (Option.isSome(final) && !isUnfinished(final.value.delegation)) yield* announce(engine, final.value.delegation)
  return Option.map(final, (stored) => stored.delegation)
})

const changeOf = (exit: Exit.Exit<Outcome, DelegationFailure>): DelegationChange =>
  Exit.match(exit, {
    onSuccess: (outcome): DelegationChange => {
      switch (outcome._tag) {
        case "Completed":
          return { status: "completed", result: outcome.result }
        case "Delegated":
          return { platformDelegationId: outcome.platformDelegationId }
        case "Queued":
          return {
            status: "queued",
            ...(outcome.reply.queueId === undefined ? {} : { queueId: outcome.reply.queueId }),
            ...(outcome.reply.queueDepth === undefined ? {} : { queueDepth: outcome.reply.queueDepth }),
            ...(outcome.reply.message === undefined ? {} : { queueMessage: outcome.reply.message })
          }
      }
    },
    onFailure: (cause) => {
      const failure = failureOf(cause)
      return { status: "failed", error: failure.message, cause: failure }
    }
  })

const failureOf = (cause: Cause.Cause<DelegationFailure>): DelegationFailure =>
  Option.getOrElse(Cause.failureOption(cause), () =>
    Cause.isInterruptedOnly(cause)
      ? interrupted("the Delegations layer was closed before the delegation ended")
      : new DelegationAborted({ reason: "defect", detail: Cause.pretty(cause) }))

/**
 * The failure of a delegation cut short by its layer's closing.
 *
 * @internal
 */
export const interrupted = (detail: string): DelegationAborted =>
  new DelegationAborted({ reason: "interrupted", detail })

/**
 * Metrics, audit and mirror of a delegation that has just reached `completed`, `queued`, `failed`
 * or `cancelled` (mirrored as failed: the platform has no cancelled status).
 *
 * @internal
 */
export const announce = Effect.fnUntraced(function*(engine: Engine, delegation: Delegation) {
  const outcome = delegation.status === "pending" || delegation.status === "in_progress" ? "failed" : delegation.status
  yield* Metric.increment(DelegationMetrics.finishedAs[outcome])
  yield* Metric.update(
    DelegationMetrics.timeToOutcome,
    DateTime.distance(delegation.createdAt, delegation.updatedAt) / 1000
  )
  const target = { id: delegation.id, target: delegation.workspaceId }
  const traceId = delegation.traceId ?? ""
  const attempt = delegation.attempts
  switch (outcome) {
    case "completed":
      yield* auditDelegation(engine, target, "success", traceId, { attempt })
      return yield* mirrorOutcome(engine, delegation, "completed")
    case "queued":
      return yield* auditDelegation(engine, target, "queued", traceId, {
        attempt,
        ...(delegation.queueId === undefined ? {} : { queue_id: delegation.queueId }),
        ...(delegation.queueDepth === undefined ? {} : { queue_depth: delegation.queueDepth })
      })
    case "failed":
    case "cancelled":
      yield* auditDelegation(engine, target, "failure", traceId, {
        last_error: delegation.error ?? "",
        reason: outcome === "cancelled"
          ? "cancelled"
          : delegation.cause?._tag === "DiscoveryError"
          ? "discovery_error"
          : delegation.cause?._tag,
        attempt
      })
      return yield* mirrorOutcome(engine, delegation, "failed")
  }
})

/**
 * The platform's row is updated before the notification goes out, so whoever reacts to the
 * notification reads the final row.
 */
const mirrorOutcome = (engine: Engine, delegation: Delegation, status: "completed" | "failed") => {
  const { id, workspaceId: target } = delegation
  const error = delegation.error ?? ""
  const options = mirrorOptions(engine, { id, target })
  // In platform dispatch the platform's row is under its own id, and there is none before it accepted.
  const row = delegation.dispatch === "platform" ? delegation.platformDelegationId : id
  const update = row === undefined ? Effect.void : deliverWrite(engine, { id, target }, {
    _tag: "update",
    request: { delegationId: row, status, error, responsePreview: delegation.result ?? "" }
  })
  return update.pipe(
    Effect.zipRight(
      engine.mirror.notify({
        delegationId: id,
        targetId: target,
        status,
        message: status === "completed"
          ? `Delegation ${id} to ${target} completed.`
          : delegation.status === "cancelled"
          ? `Delegation ${id} to ${target} was cancelled.`
          : `Delegation ${id} to ${target} failed: ${error}`
      }).pipe(bestEffort("platform notify", options))
    ),
    // The outcome is already in the store: a closing layer does not wait past its bound for the platform.
    engine.abandonable
  )
}
