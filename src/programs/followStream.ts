/**
 * Following a peer's task as it happens, over Server-Sent Events: the streaming send
 * (`SendStreamingMessage` / `message/stream`), the events that move the delegation (its task id, the
 * peer's progress notes, the artifact text so far), re-attaching with `SubscribeToTask` /
 * `tasks/resubscribe` after a dropped stream, and polling when the peer will not stream.
 *
 * @internal
 */
import { Chunk, Duration, Effect, Option, Ref, Stream } from "effect"
import type { Scope } from "effect"
import { isTerminalState } from "../services/A2A.js"
import type { TaskState } from "../services/A2A.js"
import type { A2AError, PeerProtocol, StreamEvent } from "../services/A2ATransport.js"
import { A2ATransportError, isTransportError, TaskReply } from "../services/A2ATransport.js"
import { DelegationTimeout } from "../services/Delegations.js"
import type { PeerEndpoint } from "../services/Discovery.js"
import { truncate } from "../services/PlatformMirror.js"
import { spanEvent } from "../internal/tracing.js"
import type { DelegationInput, Engine } from "./engine.js"
import { updateDelegation } from "./engine.js"
import { followTask, isPendingState } from "./followTask.js"

/**
 * The events of one open stream, one at a time.
 *
 * @internal
 */
export interface EventReader {
  /** The next event; `None` when the stream ended. */
  readonly next: Effect.Effect<Option.Option<StreamEvent>, A2AError>
}

/**
 * Opens `stream` in the current scope (closed with it: an interrupted delegation closes its connection).
 *
 * @internal
 */
export const readEvents = (stream: Stream.Stream<StreamEvent, A2AError>): Effect.Effect<EventReader, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(stream)
    const buffered = yield* Ref.make(Chunk.empty<StreamEvent>())
    const next: Effect.Effect<Option.Option<StreamEvent>, A2AError> = Effect.flatMap(Ref.get(buffered), (events) => {
      const head = Chunk.head(events)
      if (Option.isSome(head)) return Effect.as(Ref.set(buffered, Chunk.drop(events, 1)), head)
      return pull.pipe(
        Effect.matchEffect({
          onFailure: Option.match({ onNone: () => Effect.succeedNone, onSome: (error) => Effect.fail(error) }),
          onSuccess: (chunk) => Effect.zipRight(Ref.set(buffered, chunk), next)
        })
      )
    })
    return { next }
  })

/**
 * True for the answers of a peer that will not stream this request (the card promised it): a method
 * it does not know (-32601), an unsupported operation (-32004), or a request it rejects outright.
 *
 * @internal
 */
export const isStreamingRefused = (error: A2AError): boolean =>
  (error._tag === "JsonRpcError" && (error.code === -32601 || error.code === -32004)) ||
  (error._tag === "A2AResponseError" && (error.status === 400 || error.status === 404 || error.status === 405 || error.status === 415))

/**
 * A stream's first event as a send's answer: a `Message` or a task (a status or artifact event before
 * the task itself stands for a task in that state).
 *
 * @internal
 */
export const asReply = (event: StreamEvent): TaskReply | Extract<StreamEvent, { readonly _tag: "MessageReply" }> => {
  switch (event._tag) {
    case "MessageReply":
    case "TaskReply":
      return event
    case "TaskStatusUpdate":
      return snapshot(event.taskId, event.state, event.message, [])
    case "TaskArtifactUpdate":
      return snapshot(event.taskId, "working", undefined, [event.text])
  }
}

/** A task in the library's model, built from what the stream said of it. */
const snapshot = (taskId: string, state: TaskState, message: string | undefined, artifacts: ReadonlyArray<string>): TaskReply => {
  const task = {
    kind: "task" as const,
    id: taskId,
    status: message === undefined
      ? { state }
      : { state, message: { parts: [{ kind: "text", text: message }], artifacts: [] } },
    artifacts: artifacts.map((text) => ({ parts: [{ kind: "text", text }] })),
    parts: []
  }
  return new TaskReply({ task, raw: task })
}

/** Characters of a progress note a delegation keeps. */
const PROGRESS_MAX = 2000

/** What the events of a task said so far. */
interface Seen {
  readonly state: TaskState
  readonly message: string | undefined
  /** Artifact texts by artifact id, in the order they began. */
  readonly artifacts: ReadonlyMap<string, string>
}

/**
 * Follows a task whose stream is open until a final event, and returns the task as it ended (or a
 * `Message` the peer ended it with). A dropped stream re-attaches on the retry schedule; a peer that
 * will not re-attach (or keeps dropping) is polled from there on. `DELEGATION_TIMEOUT` bounds it all.
 *
 * @internal
 */
export const followStream = (
  engine: Engine,
  input: DelegationInput,
  endpoint: PeerEndpoint,
  protocol: PeerProtocol,
  first: TaskReply,
  events: EventReader
): Effect.Effect<TaskReply | Extract<StreamEvent, { readonly _tag: "MessageReply" }>, A2AError | DelegationTimeout> =>
  Effect.gen(function*() {
    const taskId = first.task.id
    yield* updateDelegation(engine, input.id, { taskId })
    const seen = yield* Ref.make<Seen>({
      state: first.task.status.state,
      message: undefined,
      artifacts: new Map()
    })
    const target = { engine, input, endpoint, protocol, taskId, seen }
    const streamed = consume(target, events).pipe(
      Effect.catchIf(isTransportError, (dropped) => resubscribe(target, dropped))
    )
    const ended = yield* Effect.timeoutOption(streamed, engine.timeout)
    if (Option.isSome(ended)) return ended.value
    const last = yield* Ref.get(seen)
    return yield* new DelegationTimeout({ seconds: Duration.toSeconds(engine.timeout), taskId, lastState: last.state })
  })

interface Target {
  readonly engine: Engine
  readonly input: DelegationInput
  readonly endpoint: PeerEndpoint
  readonly protocol: PeerProtocol
  readonly taskId: string
  readonly seen: Ref.Ref<Seen>
}

type Ended = TaskReply | Extract<StreamEvent, { readonly _tag: "MessageReply" }>

/** Reads events until the final one; a stream that ends before it is a dropped one. */
const consume = (target: Target, events: EventReader): Effect.Effect<Ended, A2AError> =>
  Effect.flatMap(events.next, Option.match({
    onNone: () =>
      Effect.fail(
        new A2ATransportError({ url: target.protocol.url, reason: "ConnectionReset", detail: "the stream ended before its final event" })
      ),
    onSome: (event) => Effect.flatMap(apply(target, event), Option.match({ onNone: () => consume(target, events), onSome: Effect.succeed }))
  }))

/** One event: stored (task state, progress, artifact text), and the end when it is final. */
const apply = (target: Target, event: StreamEvent): Effect.Effect<Option.Option<Ended>> => {
  const { engine, input, seen } = target
  switch (event._tag) {
    case "MessageReply":
      return Effect.succeedSome(event)
    case "TaskReply":
      return Effect.as(
        Ref.update(seen, (s) => ({ ...s, state: event.task.status.state })),
        isTerminalState(event.task.status.state) ? Option.some(event) : Option.none()
      )
    case "TaskStatusUpdate":
      return Effect.gen(function*() {
        const now = yield* Ref.updateAndGet(seen, (s) => ({ ...s, state: event.state, message: event.message ?? s.message }))
        yield* spanEvent("a2a.status_update", {
          "a2a.task_state": event.state,
          ...(event.message === undefined ? {} : { "a2a.status_message": truncate(event.message, 200) })
        })
        if (event.message !== undefined) {
          yield* updateDelegation(engine, input.id, { progress: truncate(event.message, PROGRESS_MAX) })
        }
        return event.final || isTerminalState(event.state) || isNeedsInput(event.state)
          ? Option.some(ended(target.taskId, now))
          : Option.none()
      })
    case "TaskArtifactUpdate":
      return Effect.gen(function*() {
        const now = yield* Ref.updateAndGet(seen, (s) => {
          const artifacts = new Map(s.artifacts)
          artifacts.set(event.artifactId, event.append ? (artifacts.get(event.artifactId) ?? "") + event.text : event.text)
          return { ...s, artifacts }
        })
        yield* updateDelegation(engine, input.id, { partialResult: joined(now) })
        return Option.none()
      })
  }
}

const isNeedsInput = (state: TaskState) => state === "input-required" || state === "auth-required"

const joined = (seen: Seen): string => Array.from(seen.artifacts.values()).join("\n")

/** The task as the events left it. */
const ended = (taskId: string, seen: Seen): TaskReply =>
  snapshot(taskId, seen.state, seen.message, Array.from(seen.artifacts.values()))

/**
 * After a dropped stream: `SubscribeToTask` / `tasks/resubscribe` on the retry schedule, the new stream
 * read as before; a peer that refuses it, cannot be reached past the schedule, or has no streaming,
 * is polled (`GetTask` / `tasks/get`) from the state seen so far. The task is never sent again.
 */
const resubscribe = (target: Target, dropped: A2ATransportError): Effect.Effect<Ended, A2AError | DelegationTimeout> => {
  const { engine, input, protocol, taskId } = target
  const subscribe = engine.transport.subscribe
  const attach = Effect.scoped(Effect.gen(function*() {
    if (subscribe === undefined) return yield* Effect.fail(dropped)
    yield* spanEvent("a2a.resubscribe", { "a2a.task_id": taskId })
    const events = yield* readEvents(
      subscribe({ endpoint: target.endpoint, protocol, taskId, requestId: `${input.id}-subscribe` })
    )
    return yield* consume(target, events)
  }))
  return attach.pipe(
    Effect.retry({ schedule: engine.retrySchedule, while: isTransportError }),
    Effect.catchAll((error) => isTransportError(error) || isStreamingRefused(error) ? poll(target) : Effect.fail(error))
  )
}

/** Polling from the state the events left (within the caller's `DELEGATION_TIMEOUT`). */
const poll = (target: Target): Effect.Effect<Ended, A2AError | DelegationTimeout> =>
  Effect.gen(function*() {
    const seen = yield* Ref.get(target.seen)
    const from = ended(target.taskId, seen)
    if (!isPendingState(seen.state)) return from
    yield* spanEvent("a2a.stream_fallback_poll", { "a2a.task_id": target.taskId })
    return yield* followTask(target.engine, target.input, target.endpoint, target.protocol, from)
  })
