/**
 * One delegation, from its start to its final state: the body of its background fiber.
 *
 * @internal
 */
import { Effect, Metric, Option, Scope } from "effect"
import type { Tracer } from "effect"
import { traceparentOf } from "../internal/tracing.js"
import type { Delegation } from "../services/Delegations.js"
import { DelegationUnresolved } from "../services/Delegations.js"
import { PeerEndpoint, withoutUserinfo } from "../services/Discovery.js"
import * as DelegationMetrics from "../services/DelegationMetrics.js"
import type { DelegationInput, Engine } from "./engine.js"
import { auditDelegation, deliverWrite, taskPreview, updateDelegation } from "./engine.js"
import { delegateOnPlatform } from "./delegateOnPlatform.js"
import { recordOutcome } from "./recordOutcome.js"
import { sendWithRetry } from "./sendWithRetry.js"
import { settleAnswer } from "./settleAnswer.js"

/**
 * Runs the delegation and records its outcome: completed, queued or failed, including a
 * defect in a service and the interruption of the fiber (when the owning layer closes).
 * Never fails. Returns the final state, which stays readable here even when a small history
 * has already evicted it from the store.
 *
 * @internal
 */
export const runDelegation = (
  engine: Engine,
  input: DelegationInput,
  resumed?: Delegation
): Effect.Effect<Option.Option<Delegation>> =>
  Effect.uninterruptibleMask((restore) =>
    // The scope closes the peer's stream, if the task was sent streaming, however the work ends. It is
    // passed, not provided: a Scope in the context cost 37 of the 379 Effect steps of a delegation.
    Effect.flatMap(Scope.make(), (streams) =>
      restore(delegateTask(engine, input, streams, resumed)).pipe(
        Effect.exit,
        Effect.tap((exit) => Scope.close(streams, exit)),
        Effect.flatMap((exit) => recordOutcome(engine, input, exit))
      ))
  )

/**
 * The delegation's own work up to its outcome, in one `task_delegate` span: a child of the span
 * `delegate` was called in, and the parent of everything the work does (requests, logs).
 */
const delegateTask = (engine: Engine, input: DelegationInput, streams: Scope.Scope, resumed: Delegation | undefined) =>
  Effect.useSpan(
    "task_delegate",
    {
      kind: "client",
      // The stack of a background fiber says nothing useful.
      captureStackTrace: false,
      attributes: {
        "workspace.id": engine.workspaceId,
        "a2a.source_workspace_id": engine.workspaceId,
        "a2a.target_workspace_id": input.target,
        "a2a.task_id": input.id,
        ...(resumed === undefined ? {} : { "a2a.resumed": true })
      }
    },
    (span) =>
      Effect.withParentSpan(
        resumed === undefined || resumed.status === "pending"
          ? work(engine, input, span, streams)
          : resume(engine, input, span, streams, resumed),
        span
      )
  )

const work = Effect.fnUntraced(function*(engine: Engine, input: DelegationInput, span: Tracer.Span, streams: Scope.Scope) {
  // `delegate` returns before any of the work starts, whichever fiber the scheduler runs first.
  yield* Effect.yieldNow()
  const started = yield* updateDelegation(engine, input.id, { status: "in_progress", traceId: span.traceId }, ["pending"])
  // Cancelled before it started: nothing to do, and nothing to record.
  if (Option.isNone(started)) return yield* Effect.interrupt
  yield* Metric.increment(DelegationMetrics.started)
  yield* auditDelegation(engine, input, "dispatched", span.traceId, { task_preview: taskPreview(input.task) })
  // The platform records, discovers and sends itself.
  if (engine.dispatch === "platform") return yield* delegateOnPlatform(engine, input)
  // The row is the platform's view of the delegation: owed until the platform has it (a failure is
  // never a reason to stop); the final update follows it, in order.
  yield* deliverWrite(engine, input, {
    _tag: "record",
    request: { delegationId: input.id, targetId: input.target, task: input.task }
  })
  const endpoint = withoutCredentials(yield* engine.discovery.resolve(input.target))
  yield* Effect.annotateCurrentSpan("a2a.peer_url", endpoint.url)
  // A proxy discovery provided to the core layer carries a delegation the proxy way, whatever the settings say.
  if (endpoint.viaPlatform === true && engine.dispatch !== "proxy") {
    yield* updateDelegation(engine, input.id, { dispatch: "proxy" })
  }
  const protocol = yield* engine.transport.protocolFor(endpoint)
  const sent = yield* sendWithRetry(engine, input, endpoint, protocol, traceparentOf(span), streams)
  return yield* settleAnswer(engine, input, endpoint, sent)
})

/**
 * A delegation this replica took over from another one, resumed by what the store says: a task the
 * peer created is followed; a request never sent is sent; one that may have reached the peer with
 * no answer known is not sent twice (`DELEGATION_RESUME=fail`, the default) unless the host opted in
 * to resend it with the same `messageId`. In `platform` dispatch the POST is idempotent (its key is
 * the delegation id) and is simply made again.
 */
const resume = Effect.fnUntraced(function*(
  engine: Engine,
  input: DelegationInput,
  span: Tracer.Span,
  streams: Scope.Scope,
  resumed: Delegation
) {
  yield* Effect.yieldNow()
  if (engine.dispatch === "platform" || resumed.dispatch === "platform") return yield* delegateOnPlatform(engine, input)
  const endpoint = withoutCredentials(yield* engine.discovery.resolve(input.target))
  yield* Effect.annotateCurrentSpan("a2a.peer_url", endpoint.url)
  const learned = yield* engine.transport.protocolFor(endpoint)
  const protocol = resumed.protocolVersion === undefined || resumed.protocolVersion === learned.version
    ? learned
    : { ...learned, version: resumed.protocolVersion }
  if (resumed.taskId !== undefined) {
    const reply = yield* engine.transport.getTask({
      endpoint,
      protocol,
      taskId: resumed.taskId,
      requestId: `${input.id}-resume`
    })
    return yield* settleAnswer(engine, input, endpoint, { reply, protocol, attempt: resumed.attempts })
  }
  if (resumed.attempts > 0 && engine.resume === "fail") {
    return yield* new DelegationUnresolved({ reason: "maybe-delivered", lastStatus: resumed.status })
  }
  const sent = yield* sendWithRetry(engine, input, endpoint, protocol, traceparentOf(span), streams, resumed.attempts)
  return yield* settleAnswer(engine, input, endpoint, sent)
})

/** Whatever discovery is used, credentials in a peer URL are never stored, traced or logged. */
const withoutCredentials = (endpoint: PeerEndpoint): PeerEndpoint => {
  const url = withoutUserinfo(endpoint.url)
  return url === endpoint.url ? endpoint : new PeerEndpoint({ ...endpoint, url }, { disableValidation: true })
}
