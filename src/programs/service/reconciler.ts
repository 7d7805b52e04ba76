/**
 * The reconciler: one background fiber, owned by the `Delegations` layer, that resolves every
 * delegation waiting on the platform (queued in any mode, or in flight in `platform` dispatch) from
 * the platform's list, with one list request per round however many wait, and fails those past
 * `DELEGATION_QUEUED_TIMEOUT`. Rounds are spaced on a capped backoff that starts over whenever a new
 * delegation begins to wait; a round with nothing waiting makes no request.
 *
 * @internal
 */
import { Cause, Clock, DateTime, Duration, Effect, Option } from "effect"
import type { Scope } from "effect"
import type { Delegation } from "../../services/Delegations.js"
import type { DelegationStoreError } from "../../services/DelegationStore.js"
import type { Engine } from "../engine.js"
import { refreshWaiting, unresolved } from "../refreshQueued.js"

/**
 * The running reconciler.
 *
 * @internal
 */
export interface Reconciler {
  /** Tells it a delegation may have started to wait, so that its next round comes soon. */
  readonly notice: (delegation: Option.Option<Delegation>) => Effect.Effect<void>
}

/** What one round leaves: whether a delegation started to wait, and the nearest deadline. */
interface Round {
  readonly fresh: boolean
  readonly nearest: number | undefined
}

/**
 * Starts the reconciler in the current scope.
 *
 * @internal
 */
export const start = (engine: Engine): Effect.Effect<Reconciler, never, Scope.Scope> =>
  Effect.gen(function*() {
    const wake = yield* Effect.makeLatch(false)
    // When each waiting delegation must be over (epoch ms), from when the reconciler first saw it wait.
    const deadlines = new Map<string, number>()
    const timeout = Duration.toMillis(engine.queuedTimeout)
    const initial = Duration.toMillis(engine.reconcileInterval.initial)
    const max = Duration.toMillis(engine.reconcileInterval.max)

    const round: Effect.Effect<Round, DelegationStoreError> = Effect.gen(function*() {
      // The waiting delegations this replica owns (another replica's are that replica's to follow).
      const mine = yield* engine.store.unfinished(engine.workspaceId, engine.replicaId)
      const waiting = mine.map((s) => s.delegation).filter((d) => d.isWaitingOnPlatform)
      const now = yield* Clock.currentTimeMillis
      let fresh = false
      const live = new Set<string>()
      for (const delegation of waiting) {
        live.add(delegation.id)
        if (!deadlines.has(delegation.id)) {
          deadlines.set(delegation.id, DateTime.toEpochMillis(delegation.updatedAt) + timeout)
          fresh = true
        }
      }
      for (const id of deadlines.keys()) if (!live.has(id)) deadlines.delete(id)
      const expired = waiting.filter((d) => (deadlines.get(d.id) ?? Infinity) <= now)
      yield* Effect.forEach(expired, (d) => unresolved(engine, d, "queued-timeout"), { discard: true })
      yield* refreshWaiting(engine, waiting.filter((d) => !expired.includes(d)))
      let nearest: number | undefined
      for (const [id, deadline] of deadlines) {
        if (expired.some((d) => d.id === id)) continue
        nearest = nearest === undefined ? deadline : Math.min(nearest, deadline)
      }
      return { fresh, nearest }
    })

    // A defect in one round is logged, never the end of the reconciler.
    const guarded = Effect.catchAllCause(round, (cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.as(Effect.logWarning("a reconciler round failed; the next one retries", cause), { fresh: false, nearest: undefined })
    )

    // One round, then a wait; `step` is how far the backoff has grown. The latch closes before the
    // round, so a delegation that starts to wait during it shortens the following wait too.
    const next = (step: number): Effect.Effect<number> =>
      Effect.gen(function*() {
        yield* wake.close
        const { fresh, nearest } = yield* guarded
        const current = fresh ? 0 : step
        const now = yield* Clock.currentTimeMillis
        const backoff = Math.min(initial * 2 ** current, max)
        const delay = nearest === undefined ? backoff : Math.max(0, Math.min(backoff, nearest - now))
        // A delegation that just started to wait is first looked up `initial` later: nothing resolves at once.
        yield* Effect.raceFirst(
          Effect.sleep(Duration.millis(delay)),
          Effect.zipRight(wake.await, Effect.sleep(Duration.millis(Math.min(initial, delay))))
        )
        return Math.min(current + 1, 30)
      })

    yield* Effect.forkScoped(Effect.iterate(0, { while: () => true, body: next }))
    return {
      notice: (delegation) =>
        Option.isSome(delegation) && delegation.value.isWaitingOnPlatform ? wake.open : Effect.void
    }
  })
