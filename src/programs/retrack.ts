/**
 * After a restart (`platform` dispatch): the delegations this workspace handed to the platform and
 * that are still queued or in flight there are tracked again, from the platform's list, so that
 * `status` and `await` reach them and the reconciler resolves them.
 *
 * @internal
 */
import { DateTime, Effect, Option } from "effect"
import { Delegation, DelegationId } from "../services/Delegations.js"
import type { Engine } from "./engine.js"
import { readRetried } from "./engine.js"
import { indexRows, platformRows } from "./refreshQueued.js"

/** Our newest delegations looked at for ids the platform's list already shows. */
const KNOWN_WINDOW = 1000

const UNRESOLVED = new Set(["pending", "dispatched", "queued"])

/**
 * Stores every delegation of the platform's list that is neither completed nor failed and not
 * already in the store (by its own id or its platform id), under the platform's delegation id.
 * Returns how many were stored. A list that cannot be read stores nothing.
 *
 * @internal
 */
export const retrack = Effect.fnUntraced(function*(engine: Engine) {
  const rows = yield* platformRows(engine)
  if (Option.isNone(rows)) return 0
  const known = new Set<string>()
  // The platform's list shows its 50 newest rows: the newest of ours cover them.
  for (const { delegation: d } of yield* readRetried(engine.store.list(engine.workspaceId, KNOWN_WINDOW))) {
    known.add(d.id)
    if (d.platformDelegationId !== undefined) known.add(d.platformDelegationId)
  }
  const index = indexRows(rows.value)
  const now = yield* DateTime.now
  let tracked = 0
  // The list is newest first; the store keeps them oldest first.
  for (const [platformId, own] of Array.from(index).reverse()) {
    if (known.has(platformId) || own.decisive !== undefined) continue
    const statuses = rows.value.filter((row) => row.delegation_id === platformId).map((row) => row.status)
    if (!statuses.some((status) => UNRESOLVED.has(status))) continue
    const createdAt = Option.getOrElse(
      Option.flatMap(Option.fromNullable(own.createdAt), (text) => DateTime.make(text)),
      () => now
    )
    yield* readRetried(engine.store.create({
      origin: engine.workspaceId,
      task: "",
      owner: engine.replicaId,
      leaseMillis: engine.leaseMillis,
      delegation: new Delegation({
        id: DelegationId.make(platformId, { disableValidation: true }),
        workspaceId: own.targetId ?? "",
        // The list keeps no task text.
        task: "",
        status: own.queued ? "queued" : "in_progress",
        attempts: 0,
        dispatch: "platform",
        platformDelegationId: platformId,
        createdAt: DateTime.toUtc(createdAt),
        updatedAt: now
      }, { disableValidation: true })
    }))
    tracked++
  }
  if (tracked > 0) yield* Effect.logInfo(`tracking ${tracked} platform delegation(s) again after a restart`)
  return tracked
})
