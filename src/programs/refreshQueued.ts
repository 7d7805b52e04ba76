/**
 * Resolves `queued` delegations from the platform's delegation list.
 *
 * @since 0.1.0
 */
import { Cause, DateTime, Duration, Effect, Metric, Option } from "effect"
import { Audit } from "../services/Audit.js"
import { PeerTaskFailed } from "../services/Delegations.js"
import type { PlatformDelegationRow } from "../services/PlatformMirror.js"
import { PlatformMirror } from "../services/PlatformMirror.js"
import { bestEffort } from "./bestEffort.js"
import * as Metrics from "./metrics.js"
import { nowUtc, patch } from "./runDelegation.js"
import type { DelegationStore } from "./store.js"

/**
 * The first completed or failed row of each delegation id (rows are newest first).
 *
 * @since 0.1.0
 * @category utils
 */
export const decisiveRows = (
  rows: ReadonlyArray<PlatformDelegationRow>
): ReadonlyMap<string, PlatformDelegationRow> => {
  const decided = new Map<string, PlatformDelegationRow>()
  for (const row of rows) {
    if (row.delegation_id === undefined || decided.has(row.delegation_id)) continue
    if (row.type !== undefined && row.type !== "delegation") continue
    if (row.status === "completed" || row.status === "failed") decided.set(row.delegation_id, row)
  }
  return decided
}

/**
 * Looks the given queued delegations up on the platform with one list call and
 * moves those the platform has resolved to completed or failed. A failed
 * refresh changes nothing and raises nothing.
 *
 * @since 0.1.0
 * @category programs
 */
export const refreshQueued = (
  ids: ReadonlyArray<string>,
  store: DelegationStore,
  options: { readonly mirrorTimeout?: Duration.DurationInput | undefined }
): Effect.Effect<void, never, PlatformMirror | Audit> =>
  Effect.gen(function*() {
    const mirror = yield* PlatformMirror
    const audit = yield* Audit
    const rows = yield* (options.mirrorTimeout === undefined ? mirror.list : Effect.timeout(mirror.list, options.mirrorTimeout))
      .pipe(
      Effect.map(Option.some),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.interrupt
          : Effect.logDebug("queued refresh failed; delegations stay queued", cause).pipe(Effect.as(Option.none()))
      )
    )
    if (Option.isNone(rows)) return
    const decided = decisiveRows(rows.value)
    for (const id of ids) {
      const row = decided.get(id)
      if (row === undefined) continue
      const now = yield* nowUtc
      let queuedSince: DateTime.Utc | undefined
      const changed = yield* store.update(id, (d) => {
        queuedSince = d.updatedAt
        if (d.status !== "queued") return d
        if (row.status === "completed") return patch(d, { status: "completed", result: row.response_preview ?? "" }, now)
        const failure = new PeerTaskFailed({ reason: "platform", detail: row.error ?? "" })
        return patch(d, { status: "failed", error: failure.message, cause: failure }, now)
      })
      if (Option.isNone(changed)) continue
      const delegation = changed.value
      const status = delegation.status === "completed" ? "completed" : "failed"
      yield* Metric.increment(Metrics.finishedAs[status])
      if (queuedSince !== undefined) {
        yield* Metric.update(Metrics.timeQueued, (DateTime.toEpochMillis(now) - DateTime.toEpochMillis(queuedSince)) / 1000)
      }
      yield* audit.log({
        eventType: "delegation",
        action: "delegate",
        resource: delegation.workspaceId,
        outcome: status === "completed" ? "success" : "failure",
        traceId: delegation.traceId ?? "",
        delegationId: id,
        extra: status === "completed"
          ? { via: "platform_refresh" }
          : { via: "platform_refresh", last_error: delegation.error ?? "" }
      }).pipe(bestEffort("audit"))
      yield* mirror.notify({
        delegationId: id,
        targetId: delegation.workspaceId,
        status,
        message: status === "completed"
          ? `Queued delegation ${id} to ${delegation.workspaceId} completed.`
          : `Queued delegation ${id} to ${delegation.workspaceId} failed: ${delegation.error ?? ""}`
      }).pipe(bestEffort("platform notify", { timeout: options.mirrorTimeout }))
    }
  })
