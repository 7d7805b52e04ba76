/**
 * Resolving `queued` delegations from the platform's delegation list (the platform's queue
 * delivered the request and recorded the outcome).
 *
 * @internal
 */
import { Cause, DateTime, Effect, Metric, Option } from "effect"
import { bestEffort } from "../internal/bestEffort.js"
import * as DelegationMetrics from "../services/DelegationMetrics.js"
import type { Delegation } from "../services/Delegations.js"
import { PeerTaskFailed } from "../services/Delegations.js"
import type { PlatformDelegationRow } from "../services/PlatformMirror.js"
import type { DelegationChange, Engine } from "./engine.js"
import { auditDelegation, updateDelegation } from "./engine.js"

/**
 * Looks the given queued delegations up with one list call, and moves those the platform
 * has resolved to completed or failed. A failed refresh changes nothing and raises nothing.
 *
 * @internal
 */
export const refreshQueued = Effect.fnUntraced(function*(engine: Engine, ids: ReadonlyArray<string>) {
  const rows = yield* platformRows(engine)
  if (Option.isNone(rows)) return
  const decided = decisiveRows(rows.value)
  yield* Effect.forEach(ids, (id) => {
    const row = decided.get(id)
    return row === undefined ? Effect.void : resolveQueued(engine, id, row)
  }, { discard: true })
})

/** The first completed or failed delegation row of each id (the platform lists the newest first). */
const decisiveRows = (rows: ReadonlyArray<PlatformDelegationRow>): ReadonlyMap<string, PlatformDelegationRow> => {
  const decided = new Map<string, PlatformDelegationRow>()
  for (const row of rows) {
    if (row.delegation_id === undefined || decided.has(row.delegation_id)) continue
    if (row.type !== undefined && row.type !== "delegation") continue
    if (row.status === "completed" || row.status === "failed") decided.set(row.delegation_id, row)
  }
  return decided
}

const platformRows = (engine: Engine): Effect.Effect<Option.Option<ReadonlyArray<PlatformDelegationRow>>> =>
  (engine.mirrorTimeout === undefined ? engine.mirror.list : Effect.timeout(engine.mirror.list, engine.mirrorTimeout)).pipe(
    Effect.asSome,
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.as(Effect.logDebug("queued refresh failed; delegations stay queued", cause), Option.none())
    )
  )

const resolveQueued = Effect.fnUntraced(function*(engine: Engine, id: string, row: PlatformDelegationRow) {
  const queued = yield* engine.store.get(id)
  const resolved = yield* updateDelegation(engine, id, resolution(row), (d) => d.status === "queued")
  if (Option.isNone(queued) || Option.isNone(resolved)) return
  const delegation = resolved.value
  yield* Metric.increment(DelegationMetrics.finishedAs[delegation.status === "completed" ? "completed" : "failed"])
  yield* Metric.update(DelegationMetrics.timeQueued, DateTime.distance(queued.value.updatedAt, delegation.updatedAt) / 1000)
  yield* announce(engine, delegation)
})

const resolution = (row: PlatformDelegationRow): DelegationChange => {
  if (row.status === "completed") return { status: "completed", result: row.response_preview ?? "" }
  const failure = new PeerTaskFailed({ reason: "platform", detail: row.error ?? "" })
  return { status: "failed", error: failure.message, cause: failure }
}

const announce = (engine: Engine, delegation: Delegation) => {
  const { id, workspaceId: target } = delegation
  const completed = delegation.status === "completed"
  const error = delegation.error ?? ""
  return Effect.zipRight(
    auditDelegation(
      engine,
      { id, target },
      completed ? "success" : "failure",
      delegation.traceId ?? "",
      completed ? { via: "platform_refresh" } : { via: "platform_refresh", last_error: error }
    ),
    engine.mirror.notify({
      delegationId: id,
      targetId: target,
      status: completed ? "completed" : "failed",
      message: completed
        ? `Queued delegation ${id} to ${target} completed.`
        : `Queued delegation ${id} to ${target} failed: ${error}`
    }).pipe(bestEffort("platform notify", { timeout: engine.mirrorTimeout }))
  )
}
