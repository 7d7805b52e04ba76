/**
 * What the peer's answer to the send means for the delegation: completed with a text,
 * queued on the platform, or failed.
 *
 * @internal
 */
import { Effect } from "effect"
import { answerText } from "../services/A2A.js"
import type { MessageReply, QueuedReply, TaskReply } from "../services/A2ATransport.js"
import type { DelegationFailure } from "../services/Delegations.js"
import { PeerTaskFailed } from "../services/Delegations.js"
import type { PeerEndpoint } from "../services/Discovery.js"
import { excerpt } from "../internal/text.js"
import { spanEvent } from "../internal/tracing.js"
import type { DelegationInput, Engine } from "./engine.js"
import { followStream } from "./followStream.js"
import { followTask, isPendingTask } from "./followTask.js"
import type { Sent } from "./sendWithRetry.js"

/**
 * How the delegation's own work ended, when it did not fail.
 *
 * @internal
 */
export type Outcome =
  | { readonly _tag: "Completed"; readonly result: string }
  | { readonly _tag: "Queued"; readonly reply: QueuedReply }
  /** Handed to the platform (`platform` dispatch); its outcome is read from the platform's list. */
  | { readonly _tag: "Delegated"; readonly platformDelegationId: string }

/**
 * Reads the answer; a task still submitted or working is followed to its end first.
 *
 * @internal
 */
export const settleAnswer = (
  engine: Engine,
  input: DelegationInput,
  endpoint: PeerEndpoint,
  { attempt, events, protocol, reply }: Sent
): Effect.Effect<Outcome, DelegationFailure> => {
  switch (reply._tag) {
    case "QueuedReply":
      return spanEvent("a2a.queued", {
        "a2a.attempt": attempt,
        ...(reply.queueId === undefined ? {} : { "a2a.queue_id": reply.queueId }),
        ...(reply.queueDepth === undefined ? {} : { "a2a.queue_depth": reply.queueDepth })
      }).pipe(Effect.as<Outcome>({ _tag: "Queued", reply }))
    case "MessageReply":
      return fromMessage(reply)
    case "TaskReply":
      if (!isPendingTask(reply)) return fromTask(reply)
      // A task sent streaming is followed on its stream; otherwise by polling.
      return events === undefined
        ? Effect.flatMap(followTask(engine, input, endpoint, protocol, reply), fromTask)
        : Effect.flatMap(
          followStream(engine, input, endpoint, protocol, reply, events),
          (ended) => ended._tag === "MessageReply" ? fromMessage(ended) : fromTask(ended)
        )
  }
}

/** Characters of a peer's failure text a failed delegation keeps. */
const FAILURE_EXCERPT = 2000

const fromMessage = (reply: MessageReply): Effect.Effect<Outcome, PeerTaskFailed> => {
  const text = answerText(reply.message) ?? JSON.stringify(reply.raw)
  // The original runtime reports its own crashes as a normal reply starting with this marker.
  return text.startsWith("Agent error:")
    ? Effect.fail(new PeerTaskFailed({ reason: "agent-error", detail: excerpt(text, FAILURE_EXCERPT) }))
    : Effect.succeed({ _tag: "Completed", result: text })
}

/**
 * What a task that ended means for the delegation.
 *
 * @internal
 */
export const fromTask = (reply: TaskReply): Effect.Effect<Outcome, PeerTaskFailed> => {
  const { id, status } = reply.task
  if (status.state === "completed") {
    return Effect.succeed({ _tag: "Completed", result: answerText(reply.task) ?? JSON.stringify(reply.raw) })
  }
  const statusText = status.message === undefined ? undefined : answerText({ artifacts: [], parts: status.message.parts })
  return Effect.fail(
    new PeerTaskFailed({
      reason: failureReason(status.state),
      taskId: id,
      detail: statusText === undefined ? "" : excerpt(statusText, FAILURE_EXCERPT)
    })
  )
}

const failureReason = (state: TaskReply["task"]["status"]["state"]): PeerTaskFailed["reason"] => {
  switch (state) {
    case "failed":
    case "rejected":
    case "canceled":
    case "input-required":
    case "auth-required":
      return state
    default:
      return "failed"
  }
}
