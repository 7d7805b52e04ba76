/**
 * Sending the task to the peer until it answers.
 *
 * Transport failures are retried on the schedule; any other answer ends the send, except a
 * version answer (-32009/-32601, given before the agent runs) to a guessed or learned version:
 * the same message is sent once more in the other version, within the same attempt, and the
 * peer is remembered in it. That happens at most once per delegation; retries after it stay in
 * the new version.
 *
 * @internal
 */
import { Effect, Metric, Option, Ref, Scope } from "effect"
import { spanEvent } from "../internal/tracing.js"
import type { A2AError, JsonRpcError, PeerProtocol, SendReply } from "../services/A2ATransport.js"
import { A2ATransportError, isTransportError, isVersionMismatch } from "../services/A2ATransport.js"
import * as DelegationMetrics from "../services/DelegationMetrics.js"
import type { PeerEndpoint } from "../services/Discovery.js"
import { canFallBack, otherVersion } from "../services/ProtocolChoice.js"
import type { DelegationInput, Engine } from "./engine.js"
import { updateDelegation } from "./engine.js"
import type { EventReader } from "./followStream.js"
import { asReply, isStreamingRefused, readEvents } from "./followStream.js"

/**
 * The peer's answer, with the attempt that got it and the version (and URL) it answered in:
 * a task it created is followed in that version.
 *
 * @internal
 */
export interface Sent {
  readonly reply: SendReply
  readonly protocol: PeerProtocol
  readonly attempt: number
  /** The rest of the peer's stream, when the task was sent streaming and is still running. */
  readonly events?: EventReader | undefined
}

/** Where one delegation's attempts go; the same for each of them. */
interface Target {
  readonly engine: Engine
  readonly input: DelegationInput
  readonly endpoint: PeerEndpoint
  readonly traceparent: string
  /** Where a stream opened by an attempt lives: the delegation's, closed when its work ends. */
  readonly streams: Scope.Scope
}

/** What the attempts so far leave to the next one. */
interface Attempts {
  readonly count: number
  readonly protocol: PeerProtocol
  readonly mayFallBack: boolean
}

/**
 * Sends the task, starting in `protocol`, and returns the first answer that is not a
 * transport failure (or the last transport failure once the schedule gives up).
 *
 * @internal
 */
export const sendWithRetry = Effect.fnUntraced(function*(
  engine: Engine,
  input: DelegationInput,
  endpoint: PeerEndpoint,
  protocol: PeerProtocol,
  traceparent: string,
  streams: Scope.Scope,
  /** Attempts made before (by a replica this delegation was taken over from). */
  before = 0
) {
  const target: Target = { engine, input, endpoint, traceparent, streams }
  const attempts = yield* Ref.make<Attempts>({ count: before, protocol, mayFallBack: canFallBack(protocol) })
  return yield* sendAttempt(target, attempts).pipe(
    Effect.tapError(forgetMovedPeer(target)),
    Effect.retry({ schedule: engine.retrySchedule, while: isTransportError })
  )
})

/**
 * A peer that could not be reached, or that answered 404, may have moved: its kept discovery is
 * dropped, so the next delegation to it discovers it again (this one keeps its endpoint).
 */
const forgetMovedPeer = ({ engine, input }: Target) => (error: A2AError): Effect.Effect<void> =>
  engine.discovery.invalidate !== undefined && mayHaveMoved(error)
    ? engine.discovery.invalidate(input.target)
    : Effect.void

const mayHaveMoved = (error: A2AError): boolean =>
  isTransportError(error) || (error._tag === "A2AResponseError" && error.status === 404)

/** One counted attempt: a POST in the current version, and the version fallback's resend if it is due. */
const sendAttempt = (target: Target, attempts: Ref.Ref<Attempts>): Effect.Effect<Sent, A2AError> =>
  Effect.gen(function*() {
    const { count, mayFallBack, protocol } = yield* Ref.updateAndGet(attempts, (a) => ({ ...a, count: a.count + 1 }))
    yield* spanEvent("a2a.attempt", { "a2a.attempt": count })
    yield* Metric.increment(DelegationMetrics.attempts)
    yield* speak(target, protocol, { attempts: count })
    return yield* postOrStream(target, protocol, `${target.input.id}-${count}`).pipe(
      Effect.map(([reply, events]): Sent => ({ reply, protocol, attempt: count, events })),
      Effect.catchIf(
        (error): error is JsonRpcError => mayFallBack && isVersionMismatch(error),
        (answer) => fallBack(target, attempts, count, protocol, answer)
      )
    )
  })

/** The resend in the other version after a version answer; it belongs to the attempt that got the answer. */
const fallBack = Effect.fnUntraced(function*(
  target: Target,
  attempts: Ref.Ref<Attempts>,
  count: number,
  from: PeerProtocol,
  answer: JsonRpcError
) {
  const to: PeerProtocol = { version: otherVersion(from.version), url: from.url, source: "learned" }
  yield* Ref.set(attempts, { count, protocol: to, mayFallBack: false })
  yield* target.engine.transport.rememberProtocol(target.endpoint, to)
  yield* spanEvent("a2a.protocol_fallback", {
    "a2a.attempt": count,
    "a2a.protocol_version.from": from.version,
    "a2a.protocol_version.to": to.version,
    "rpc.jsonrpc.error_code": answer.code
  })
  yield* speak(target, to, {})
  const reply = yield* post(target, to, `${target.input.id}-${count}-${to.version}`)
  return { reply, protocol: to, attempt: count } satisfies Sent
})

/** Notes the version about to be spoken, on the span and in the store (with the attempt count, on a new attempt). */
const speak = (target: Target, protocol: PeerProtocol, change: { readonly attempts?: number }) =>
  Effect.zipRight(
    Effect.annotateCurrentSpan("a2a.protocol_version", protocol.version),
    updateDelegation(target.engine, target.input.id, { ...change, protocolVersion: protocol.version })
  )

/** One `SendMessage` / `message/send` POST. The `messageId` is the delegation id on every one of them. */
const post = (target: Target, protocol: PeerProtocol, requestId: string) =>
  target.engine.transport.send(sendRequest(target, protocol, requestId))

const sendRequest = ({ endpoint, engine, input, traceparent }: Target, protocol: PeerProtocol, requestId: string) => ({
  endpoint,
  protocol,
  messageId: input.id,
  requestId,
  delegationId: input.id,
  text: input.task,
  metadata: { parent_task_id: input.id, source_workspace_id: engine.workspaceId, traceparent }
})

/**
 * The send of one attempt: streaming (`SendStreamingMessage` / `message/stream`) when the peer's card
 * offers it and `DELEGATION_STREAMING` allows it, answered by the stream's first event (the rest is
 * returned open); otherwise, or when the peer refuses to stream, a plain send. A stream that ends or
 * drops before its first event is a transport failure of the attempt, retried as any other.
 */
const postOrStream = (
  target: Target,
  protocol: PeerProtocol,
  requestId: string
): Effect.Effect<readonly [SendReply, EventReader | undefined], A2AError> => {
  const { engine } = target
  const sendStream = engine.transport.sendStream
  if (!engine.streaming || protocol.streaming !== true || sendStream === undefined) {
    return Effect.map(post(target, protocol, requestId), (reply) => [reply, undefined] as const)
  }
  return Effect.gen(function*() {
    const events = yield* Scope.extend(readEvents(sendStream(sendRequest(target, protocol, requestId))), target.streams)
    const first = yield* events.next
    if (Option.isNone(first)) {
      return yield* new A2ATransportError({ url: protocol.url, reason: "ConnectionReset", detail: "the stream ended before its first event" })
    }
    const reply = asReply(first.value)
    return [reply, reply._tag === "TaskReply" ? events : undefined] as const
  }).pipe(
    Effect.catchIf(isStreamingRefused, (refusal) =>
      Effect.gen(function*() {
        // The card promised streaming; this peer will not: plain sends from now on.
        yield* Effect.logDebug("the peer refused to stream; sending plainly", refusal)
        yield* engine.transport.rememberProtocol(target.endpoint, { ...protocol, streaming: false })
        const reply = yield* post(target, { ...protocol, streaming: false }, `${requestId}-plain`)
        return [reply, undefined] as const
      }))
  )
}
