/**
 * Following a peer task that is still submitted or working, with `GetTask` / `tasks/get`
 * on the poll schedule, until it ends or `DELEGATION_TIMEOUT` runs out.
 *
 * @internal
 */
import { Duration, Effect, MutableHashMap, Option, Ref, Schedule } from "effect"
import type { TaskState } from "../services/A2A.js"
import type { A2AError, A2ATransportError, PeerProtocol, TaskReply } from "../services/A2ATransport.js"
import { DelegationTimeout } from "../services/Delegations.js"
import type { PeerEndpoint } from "../services/Discovery.js"
import type { DelegationInput, Engine, FollowedTask } from "./engine.js"
import { updateDelegation } from "./engine.js"

/**
 * True while the peer's task may still change by itself.
 *
 * @internal
 */
export const isPendingTask = (reply: TaskReply): boolean => isPendingState(reply.task.status.state)

/**
 * True for the states in which a task may still change by itself.
 *
 * @internal
 */
export const isPendingState = (state: TaskState): boolean =>
  state === "submitted" || state === "working" || state === "unknown"

/**
 * Polls the task the send created (in the version and at the URL it was created in) and returns
 * its first state that is not pending. A poll that fails in transport is skipped; any other
 * failure ends the delegation.
 *
 * @internal
 */
export const followTask = Effect.fnUntraced(function*(
  engine: Engine,
  input: DelegationInput,
  endpoint: PeerEndpoint,
  protocol: PeerProtocol,
  first: TaskReply
) {
  yield* updateDelegation(engine, input.id, { taskId: first.task.id })
  const latest = yield* Ref.make(first)
  const task = { endpoint, protocol, taskId: first.task.id }
  const settled = yield* pollTask(engine, input, task, latest).pipe(
    Effect.scheduleFrom(first, untilSettled(engine.pollSchedule)),
    Effect.timeoutOption(engine.timeout),
    following(engine, input.id, task)
  )
  const last = Option.isSome(settled) ? settled.value : yield* Ref.get(latest)
  if (!isPendingTask(last)) return last
  return yield* new DelegationTimeout({
    seconds: Duration.toSeconds(engine.timeout),
    taskId: first.task.id,
    lastState: last.task.status.state
  })
})

/** Lets `cancel` find the task while it is followed. */
const following = (engine: Engine, id: string, task: FollowedTask) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => MutableHashMap.set(engine.following, id, task)),
    () => self,
    () => Effect.sync(() => MutableHashMap.remove(engine.following, id))
  )

/** The poll schedule, while the last state seen is pending; its output is that last state. */
const untilSettled = (schedule: Schedule.Schedule<unknown, TaskReply>): Schedule.Schedule<TaskReply, TaskReply> =>
  Schedule.passthrough(schedule).pipe(Schedule.whileInput(isPendingTask))

/** One poll; its JSON-RPC id counts the polls. A transport failure leaves the last state seen. */
const pollTask = (
  engine: Engine,
  input: DelegationInput,
  task: { readonly endpoint: PeerEndpoint; readonly protocol: PeerProtocol; readonly taskId: string },
  latest: Ref.Ref<TaskReply>
): Effect.Effect<TaskReply, Exclude<A2AError, A2ATransportError>> =>
  Effect.flatMap(Schedule.CurrentIterationMetadata, ({ recurrence }) =>
    engine.transport.getTask({ ...task, requestId: `${input.id}-get-${recurrence}` }).pipe(
      Effect.tap((reply) => Ref.set(latest, reply)),
      Effect.catchTag("A2ATransportError", (error) =>
        Effect.zipRight(Effect.logDebug("GetTask transport failure; polling again", error), Ref.get(latest)))
    ))
