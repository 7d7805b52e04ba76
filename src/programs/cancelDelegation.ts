/**
 * Cancelling a delegation at the peer: `CancelTask` (1.0) / `tasks/cancel` (v0.3) for the task
 * it was following, best effort and bounded, and what the peer's answer means for the final state.
 *
 * @internal
 */
import { Duration, Effect, Option } from "effect"
import type { A2AError, JsonRpcError, TaskReply } from "../services/A2ATransport.js"
import { DelegationAborted } from "../services/Delegations.js"
import { bestEffortOption } from "../internal/bestEffort.js"
import type { DelegationChange, Engine, FollowedTask } from "./engine.js"
import { fromTask } from "./settleAnswer.js"

/**
 * Upper bound of the peer cancel (the cancel request, and the task read after a -32002).
 *
 * @internal
 */
export const PEER_CANCEL_TIMEOUT = Duration.seconds(10)

/** A2A `TaskNotCancelableError`: the task has already ended (or cannot be stopped). */
const TASK_NOT_CANCELABLE = -32002

/**
 * The change that records a cancel.
 *
 * @internal
 */
export const cancelledChange = (detail: string): DelegationChange => {
  const cause = new DelegationAborted({ reason: "cancelled", detail })
  return { status: "cancelled", error: cause.message, cause }
}

/**
 * Asks the peer to cancel `task` and returns the change to record: `cancelled`, unless the peer
 * says the task cannot be cancelled and a read shows it has completed or failed - then that outcome.
 * A peer that does not answer in time, or fails, leaves `cancelled`.
 *
 * @internal
 */
export const cancelAtPeer = Effect.fnUntraced(function*(
  engine: Engine,
  id: string,
  task: FollowedTask,
  cancelled: DelegationChange
) {
  const answer = yield* engine.transport.cancelTask({ ...task, requestId: `${id}-cancel` }).pipe(
    Effect.catchIf(isNotCancelable, () => engine.transport.getTask({ ...task, requestId: `${id}-cancel-get` })),
    bestEffortOption("peer cancel", {
      timeout: PEER_CANCEL_TIMEOUT,
      annotations: { delegation_id: id, "a2a.task_id": task.taskId }
    })
  )
  return Option.isSome(answer) ? yield* reconciled(answer.value, cancelled) : cancelled
})

const isNotCancelable = (error: A2AError): error is JsonRpcError =>
  error._tag === "JsonRpcError" && error.code === TASK_NOT_CANCELABLE

/** A task that ended by itself before the cancel reached it keeps its own outcome. */
const reconciled = (reply: TaskReply, cancelled: DelegationChange): Effect.Effect<DelegationChange> => {
  const state = reply.task.status.state
  if (state !== "completed" && state !== "failed" && state !== "rejected") return Effect.succeed(cancelled)
  return Effect.match(fromTask(reply), {
    onSuccess: (outcome): DelegationChange =>
      outcome._tag === "Completed" ? { status: "completed", result: outcome.result } : cancelled,
    onFailure: (failure): DelegationChange => ({ status: "failed", error: failure.message, cause: failure })
  })
}
