/**
 * Resolving delegations that wait on the platform (`queued` in any mode, or in flight in `platform`
 * dispatch) from the platform's delegation list, with one list call for all of them; and failing
 * those whose outcome can never come (past `DELEGATION_QUEUED_TIMEOUT`, or out of the list's window).
 *
 * @internal
 */
import { Cause, DateTime, Duration, Effect, Either, Metric, Option } from "effect"
import { bestEffort } from "../internal/bestEffort.js"
import * as DelegationMetrics from "../services/DelegationMetrics.js"
import type { Delegation } from "../services/Delegations.js"
import { DelegationUnresolved, PeerTaskFailed } from "../services/Delegations.js"
import type { PlatformDelegationRow } from "../services/PlatformMirror.js"
import type { DelegationChange, Engine } from "./engine.js"
import { auditDelegation, deliverWrite, mirrorOptions, readRetried, recordingOutside, updateDelegation, WAITING } from "./engine.js"

/**
 * Rows the platform's list returns at most (its newest).
 *
 * @internal
 */
export const LIST_WINDOW = 50

/**
 * Looks the given delegations up with one list call (those not waiting on the platform are left
 * alone), and moves those the platform has resolved to completed or failed. A failed refresh
 * changes nothing and raises nothing.
 *
 * @internal
 */
export const refreshQueued = Effect.fnUntraced(function*(engine: Engine, ids: ReadonlyArray<string>) {
  const stored = yield* Effect.forEach(ids, (id) => readRetried(engine.store.get(id)))
  yield* refreshWaiting(
    engine,
    stored.flatMap((d) => Option.isSome(d) && d.value.delegation.isWaitingOnPlatform ? [d.value.delegation] : [])
  )
})

/**
 * One list call for all the waiting delegations given (none when there are none): each resolved one
 * is stored and announced; one the platform shows `queued` while it was in flight turns `queued`; one
 * missing from a full list can no longer be read and fails (`out-of-window`).
 *
 * @internal
 */
export const refreshWaiting = Effect.fnUntraced(function*(engine: Engine, waiting: ReadonlyArray<Delegation>) {
  if (waiting.length === 0) return
  const rows = yield* platformRows(engine)
  if (Option.isNone(rows)) return
  const index = indexRows(rows.value)
  const full = rows.value.length >= LIST_WINDOW
  yield* Effect.forEach(waiting, (delegation) => {
    const entry = index.get(delegation.platformDelegationId ?? delegation.id)
    if (entry?.decisive !== undefined) return resolve(engine, delegation, entry.decisive)
    if (entry === undefined) return full ? unresolved(engine, delegation, "out-of-window") : Effect.void
    return entry.queued && delegation.status === "in_progress" ? markQueued(engine, delegation) : Effect.void
  }, { discard: true })
})

/**
 * The platform's rows of one delegation.
 *
 * @internal
 */
export interface RowsOf {
  /** Its completed row (the one with a preview first), else its failed row. */
  readonly decisive: PlatformDelegationRow | undefined
  /** A row of it says `queued`. */
  readonly queued: boolean
  readonly targetId: string | undefined
  /** The oldest row's `created_at`. */
  readonly createdAt: string | undefined
}

/**
 * The rows of each delegation id (the list is newest first).
 *
 * @internal
 */
export const indexRows = (rows: ReadonlyArray<PlatformDelegationRow>): ReadonlyMap<string, RowsOf> => {
  const grouped = new Map<string, Array<PlatformDelegationRow>>()
  for (const row of rows) {
    if (row.delegation_id === undefined) continue
    if (row.type !== undefined && row.type !== "delegation") continue
    const own = grouped.get(row.delegation_id)
    if (own === undefined) grouped.set(row.delegation_id, [row])
    else own.push(row)
  }
  const index = new Map<string, RowsOf>()
  for (const [id, own] of grouped) {
    // The newest completed or failed row decides; a completed one without a preview yields to one with it.
    const first = own.find((row) => row.status === "completed" || row.status === "failed")
    const decisive = first?.status === "completed" && first.response_preview === undefined
      ? own.find((row) => row.status === "completed" && row.response_preview !== undefined) ?? first
      : first
    index.set(id, {
      decisive,
      queued: own.some((row) => row.status === "queued"),
      targetId: own.find((row) => row.target_id !== undefined && row.target_id !== "")?.target_id,
      createdAt: own[own.length - 1]?.created_at
    })
  }
  return index
}

/**
 * The platform's list, or `None` when it cannot be read (logged at Debug).
 *
 * @internal
 */
export const platformRows = (engine: Engine): Effect.Effect<Option.Option<ReadonlyArray<PlatformDelegationRow>>> =>
  (engine.mirrorTimeout === undefined ? engine.mirror.list : Effect.timeout(engine.mirror.list, engine.mirrorTimeout)).pipe(
    Effect.asSome,
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.as(Effect.logDebug("platform list failed; waiting delegations stay as they are", cause), Option.none())
    )
  )

const resolve = (engine: Engine, waiting: Delegation, row: PlatformDelegationRow) =>
  recordingOutside(
    engine,
    waiting.id,
    Effect.gen(function*() {
      const resolved = yield* updateDelegation(engine, waiting.id, resolution(row), WAITING)
      if (Option.isNone(resolved)) return
      const delegation = resolved.value.delegation
      yield* Metric.increment(DelegationMetrics.finishedAs[delegation.status === "completed" ? "completed" : "failed"])
      yield* timed(waiting, delegation)
      yield* announce(engine, delegation, { mirror: false })
    })
  )

const resolution = (row: PlatformDelegationRow): DelegationChange => {
  const preview = row.response_preview ?? ""
  // The platform takes a peer's JSON-RPC error for a completed reply and keeps its raw JSON as the text.
  const rpcError = row.status === "completed" ? jsonRpcErrorOf(preview) : undefined
  if (row.status === "completed" && rpcError === undefined) {
    return { status: "completed", result: preview, resultIsPreview: true }
  }
  const failure = new PeerTaskFailed({ reason: "platform", detail: rpcError ?? row.error ?? "" })
  return { status: "failed", error: failure.message, cause: failure }
}

const RPC_ERROR = /^\{.*"jsonrpc"\s*:\s*"2\.0".*"error"\s*:\s*\{\s*"code"\s*:\s*(-?\d+)\s*,\s*"message"\s*:\s*"((?:[^"\\]|\\.)*)"/s
const RPC_ERROR_FIRST = /^\{.*"error"\s*:\s*\{\s*"code"\s*:\s*(-?\d+)\s*,\s*"message"\s*:\s*"((?:[^"\\]|\\.)*)".*"jsonrpc"\s*:\s*"2\.0"/s

/**
 * `JSON-RPC error <code>: <message>` when a preview is (the start of) a JSON-RPC error response,
 * read even when the platform cut it.
 */
const jsonRpcErrorOf = (preview: string): string | undefined => {
  const match = RPC_ERROR.exec(preview) ?? RPC_ERROR_FIRST.exec(preview)
  if (match === null) return undefined
  const message = Either.getOrElse(
    Either.try(() => JSON.parse(`"${match[2] ?? ""}"`) as unknown),
    () => match[2]
  )
  return `JSON-RPC error ${match[1]}: ${typeof message === "string" ? message : match[2]}`
}

/** Time spent queued, or (handed to the platform) from the start to the outcome. */
const timed = (waiting: Delegation, delegation: Delegation) =>
  waiting.status === "queued"
    ? Metric.update(DelegationMetrics.timeQueued, DateTime.distance(waiting.updatedAt, delegation.updatedAt) / 1000)
    : Metric.update(DelegationMetrics.timeToOutcome, DateTime.distance(delegation.createdAt, delegation.updatedAt) / 1000)

/** The platform took a delegation handed to it and queued it behind a busy peer. */
const markQueued = Effect.fnUntraced(function*(engine: Engine, waiting: Delegation) {
  const queued = yield* updateDelegation(
    engine,
    waiting.id,
    { status: "queued" },
    ["in_progress"]
  )
  if (Option.isNone(queued)) return
  yield* Metric.increment(DelegationMetrics.finishedAs.queued)
  yield* auditDelegation(engine, { id: waiting.id, target: waiting.workspaceId }, "queued", waiting.traceId ?? "", {
    via: "platform",
    platform_delegation_id: waiting.platformDelegationId ?? ""
  })
})

/**
 * Fails a waiting delegation whose outcome can never come, mirrored (the platform's row of it turns
 * failed), audited and notified.
 *
 * @internal
 */
export const unresolved = (
  engine: Engine,
  waiting: Delegation,
  reason: DelegationUnresolved["reason"]
): Effect.Effect<void> => recordingOutside(engine, waiting.id, unresolvedNow(engine, waiting, reason))

const unresolvedNow = Effect.fnUntraced(function*(
  engine: Engine,
  waiting: Delegation,
  reason: DelegationUnresolved["reason"]
) {
  const failure = new DelegationUnresolved({
    reason,
    lastStatus: waiting.status,
    ...(reason === "queued-timeout" ? { seconds: Duration.toSeconds(engine.queuedTimeout) } : {})
  })
  const failed = yield* updateDelegation(
    engine,
    waiting.id,
    { status: "failed", error: failure.message, cause: failure },
    WAITING)
  if (Option.isNone(failed)) return
  yield* Metric.increment(DelegationMetrics.finishedAs.failed)
  yield* timed(waiting, failed.value.delegation)
  yield* announce(engine, failed.value.delegation, { mirror: true })
})

const announce = (engine: Engine, delegation: Delegation, options: { readonly mirror: boolean }) => {
  const { id, workspaceId: target } = delegation
  const completed = delegation.status === "completed"
  const error = delegation.error ?? ""
  const via = delegation.dispatch === "platform" ? "platform" : "platform_refresh"
  const platformId = delegation.platformDelegationId ?? id
  const what = delegation.dispatch === "platform" ? "Delegation" : "Queued delegation"
  const bestEffortOptions = mirrorOptions(engine, { id, target })
  return Effect.all([
    auditDelegation(
      engine,
      { id, target },
      completed ? "success" : "failure",
      delegation.traceId ?? "",
      completed
        ? { via }
        : { via, last_error: error, ...(delegation.cause === undefined ? {} : { reason: delegation.cause._tag }) }
    ),
    // Only a failure of our own making is mirrored: a resolution was read from the platform's rows.
    options.mirror
      ? deliverWrite(engine, { id, target }, {
        _tag: "update",
        request: { delegationId: platformId, status: "failed", error, responsePreview: "" }
      })
      : Effect.void,
    engine.mirror.notify({
      delegationId: id,
      targetId: target,
      status: completed ? "completed" : "failed",
      message: completed ? `${what} ${id} to ${target} completed.` : `${what} ${id} to ${target} failed: ${error}`
    }).pipe(bestEffort("platform notify", bestEffortOptions))
  ], { discard: true })
}
