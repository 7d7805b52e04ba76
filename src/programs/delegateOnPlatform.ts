/**
 * `platform` dispatch: the delegation is handed to the platform (`POST /workspaces/{self}/delegate`),
 * which sends it to the peer, queues it behind a busy peer, and keeps the outcome in its delegation
 * list, where the reconciler reads it.
 *
 * @internal
 */
import { Duration, Effect, Ref, Schedule } from "effect"
import { spanEvent } from "../internal/tracing.js"
import type { PlatformDelegated } from "../services/PlatformMirror.js"
import { PlatformError } from "../services/PlatformMirror.js"
import type { DelegationInput, Engine } from "./engine.js"
import { updateDelegation } from "./engine.js"
import type { Outcome } from "./settleAnswer.js"

// The idempotency key (the delegation id) makes a re-sent POST safe: the platform answers it with
// the delegation it already has instead of dispatching again.
const RESEND: Schedule.Schedule<unknown, PlatformError> = Schedule.exponential("500 millis").pipe(
  Schedule.intersect(Schedule.recurs(2))
)

/**
 * A failure after which the POST may not have been seen, or the platform asks to come back. A 429 is
 * not one: the mirror has already sent the POST again after each `Retry-After` (PlatformMirrorHttp).
 */
const isTransient = (error: PlatformError): boolean =>
  error.reason === "Transport" || error.reason === "Timeout" ||
  (error.reason === "Status" && (error.status === 502 || error.status === 503 || error.status === 504))

/**
 * Posts the delegation to the platform (re-sent on a transient failure, never dispatched twice)
 * and returns the platform's delegation id; the outcome comes later, from the platform's list.
 *
 * @internal
 */
export const delegateOnPlatform = Effect.fnUntraced(function*(engine: Engine, input: DelegationInput) {
  const posts = yield* Ref.make(0)
  const post = Effect.zipRight(
    Ref.updateAndGet(posts, (n) => n + 1).pipe(Effect.tap((attempts) => updateDelegation(engine, input.id, { attempts }))),
    bounded(engine, engine.mirror.delegate({ targetId: input.target, task: input.task, idempotencyKey: input.id }))
  )
  const reply: PlatformDelegated = yield* Effect.retry(post, { schedule: RESEND, while: isTransient })
  yield* Effect.annotateCurrentSpan("a2a.platform_delegation_id", reply.delegationId)
  yield* spanEvent("a2a.platform_delegated", {
    "a2a.platform_delegation_id": reply.delegationId,
    "a2a.platform_status": reply.status,
    "a2a.idempotent_hit": reply.idempotentHit
  })
  const outcome: Outcome = { _tag: "Delegated", platformDelegationId: reply.delegationId }
  return outcome
})

const bounded = <A>(engine: Engine, effect: Effect.Effect<A, PlatformError>): Effect.Effect<A, PlatformError> => {
  const timeout = engine.mirrorTimeout
  return timeout === undefined ? effect : Effect.timeoutFail(effect, {
    duration: timeout,
    onTimeout: () =>
      new PlatformError({ operation: "delegate", reason: "Timeout", detail: `no answer within ${Duration.format(timeout)}` })
  })
}
