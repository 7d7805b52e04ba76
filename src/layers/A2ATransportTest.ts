/**
 * A scriptable in-memory A2A peer for tests: no HTTP, every answer chosen by the test.
 *
 * @since 0.1.0
 */
import { Chunk, Context, Duration, Effect, Layer, Ref, Stream } from "effect"
import { DEFAULT_CAPACITY, makeProtocolChoice } from "../services/ProtocolChoice.js"
import type { CardProtocol, ProtocolSetting, TaskState } from "../services/A2A.js"
import type { A2AError, CancelTask, GetTask, SendMessage, SendReply, StreamEvent } from "../services/A2ATransport.js"
import {
  A2ARequestError,
  A2AResponseError,
  A2ATransport,
  A2ATransportError,
  JsonRpcError,
  MessageReply,
  QueuedReply,
  TaskArtifactUpdate,
  TaskReply,
  TaskStatusUpdate
} from "../services/A2ATransport.js"

/**
 * One scripted answer: a reply, an error, or any effect (for example `Effect.never` to hang).
 *
 * @since 0.1.0
 * @category models
 */
export type Answer<A> = A | A2AError | Effect.Effect<A, A2AError>

/**
 * Answers in order (the last one repeats), or a function of the request and its index.
 *
 * @since 0.1.0
 * @category models
 */
export type Script<Req, A> = ReadonlyArray<Answer<A>> | ((request: Req, index: number) => Answer<A>)

/**
 * What was sent to the scripted peer.
 *
 * @since 0.1.0
 * @category tags
 */
export class A2ATransportTest extends Context.Tag("effect-a2a-delegation/A2ATransportTest")<A2ATransportTest, {
  readonly sent: Effect.Effect<ReadonlyArray<SendMessage>>
  readonly polled: Effect.Effect<ReadonlyArray<GetTask>>
  readonly canceled: Effect.Effect<ReadonlyArray<CancelTask>>
  /** The peer URLs whose agent card was read (`protocol: "auto"`), in order. */
  readonly cardReads: Effect.Effect<ReadonlyArray<string>>
  /** The streaming sends (`sendStream`). */
  readonly streamed: Effect.Effect<ReadonlyArray<SendMessage>>
  /** The re-subscriptions (`subscribe`). */
  readonly subscribed: Effect.Effect<ReadonlyArray<GetTask>>
}>() {}

/**
 * One scripted stream: its events in order, where an error ends the stream with that failure (a
 * dropped connection, a refusal before the first event); or any `Stream`.
 *
 * @since 0.4.0
 * @category models
 */
export type StreamAnswer = ReadonlyArray<StreamEvent | A2AError> | Stream.Stream<StreamEvent, A2AError>

/**
 * Streams in order (the last one repeats), or a function of the request and its index.
 *
 * @since 0.4.0
 * @category models
 */
export type StreamScript<Req> = ReadonlyArray<StreamAnswer> | ((request: Req, index: number) => StreamAnswer)

const runStream = <Req>(script: StreamScript<Req>, request: Req, index: number): Stream.Stream<StreamEvent, A2AError> => {
  const answer = typeof script === "function" ? script(request, index) : script[Math.min(index, script.length - 1)]
  if (answer === undefined) return Stream.die(new Error("A2ATransportTest: no stream scripted"))
  if (!Array.isArray(answer)) return answer as Stream.Stream<StreamEvent, A2AError>
  const events = answer as ReadonlyArray<StreamEvent | A2AError>
  const cut = events.findIndex(isA2AError)
  const delivered = Stream.fromIterable((cut === -1 ? events : events.slice(0, cut)) as ReadonlyArray<StreamEvent>)
  return cut === -1 ? delivered : Stream.concat(delivered, Stream.fail(events[cut] as A2AError))
}

const isA2AError = (value: unknown): value is A2AError =>
  value instanceof A2ATransportError || value instanceof A2ARequestError || value instanceof A2AResponseError ||
  value instanceof JsonRpcError

const run = <Req, A>(script: Script<Req, A>, request: Req, index: number): Effect.Effect<A, A2AError> => {
  const answer = typeof script === "function" ? script(request, index) : script[Math.min(index, script.length - 1)]
  if (answer === undefined) return Effect.die(new Error("A2ATransportTest: no answer scripted"))
  // Errors are checked first: a tagged error is itself an Effect.
  if (isA2AError(answer)) return Effect.fail(answer)
  if (Effect.isEffect(answer)) return answer
  return Effect.succeed(answer)
}

/**
 * What the scripted peer answers, and how it chooses versions.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly send: Script<SendMessage, SendReply>
  readonly getTask?: Script<GetTask, TaskReply> | undefined
  readonly cancelTask?: Script<CancelTask, TaskReply> | undefined
  /**
   * The version choice, as `A2A_PROTOCOL`: pinned `1.0` by default (no fallback), `0.3`,
   * or `auto` over `cards` with the live transport's cache and fallback rules.
   */
  readonly protocol?: ProtocolSetting | undefined
  /** In `auto`: what each peer's agent card says, by discovered URL; a missing URL has no card. */
  readonly cards?: Readonly<Record<string, CardProtocol>> | undefined
  /** In `auto`: how long a peer's version is kept (1 hour, on the `Clock`). */
  readonly timeToLive?: Duration.DurationInput | undefined
  /**
   * Every peer streams (its card says `capabilities.streaming`): `sendStream` answers with this script,
   * and `subscribe` with `subscribe`. Left out, the transport has no streaming.
   */
  readonly sendStream?: StreamScript<SendMessage> | undefined
  /** What `SubscribeToTask` / `tasks/resubscribe` answers (with `sendStream`). */
  readonly subscribe?: StreamScript<GetTask> | undefined
}

// Records a request in `log` and runs the answer the script has for it.
const answering = <Req, A>(log: Ref.Ref<Chunk.Chunk<Req>>, script: Script<Req, A>) => (request: Req) =>
  Ref.modify(log, (all) => [Chunk.size(all), Chunk.append(all, request)] as const).pipe(
    Effect.flatMap((index) => run(script, request, index))
  )

// Records a streaming request in `log` and streams the answer the script has for it.
const streamingFrom = <Req>(log: Ref.Ref<Chunk.Chunk<Req>>, script: StreamScript<Req>) => (request: Req) =>
  Stream.unwrap(
    Effect.map(Ref.modify(log, (all) => [Chunk.size(all), Chunk.append(all, request)] as const), (index) =>
      runStream(script, request, index))
  )

const readAll = <A>(log: Ref.Ref<Chunk.Chunk<A>>) => Effect.map(Ref.get(log), Chunk.toReadonlyArray)

/**
 * Provides `A2ATransport` and `A2ATransportTest`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (script: Options): Layer.Layer<A2ATransport | A2ATransportTest> =>
  Layer.effectContext(Effect.gen(function*() {
    const sent = yield* Ref.make(Chunk.empty<SendMessage>())
    const polled = yield* Ref.make(Chunk.empty<GetTask>())
    const canceled = yield* Ref.make(Chunk.empty<CancelTask>())
    const cardReads = yield* Ref.make(Chunk.empty<string>())
    const cards = script.cards ?? {}
    const choice = yield* makeProtocolChoice({
      setting: script.protocol ?? "1.0",
      readCard: (url) => Effect.as(Ref.update(cardReads, Chunk.append(url)), cards[url]),
      capacity: DEFAULT_CAPACITY,
      timeToLive: script.timeToLive ?? Duration.hours(1)
    })
    const streamed = yield* Ref.make(Chunk.empty<SendMessage>())
    const subscribed = yield* Ref.make(Chunk.empty<GetTask>())
    const streaming = script.sendStream
    const streams = streaming === undefined ? {} : {
      sendStream: streamingFrom(streamed, streaming),
      subscribe: streamingFrom(subscribed, script.subscribe ?? [])
    }
    return Context.make(A2ATransport, {
      protocolFor: streaming === undefined
        ? choice.protocolFor
        : (endpoint) => Effect.map(choice.protocolFor(endpoint), (protocol) => ({ ...protocol, streaming: true })),
      rememberProtocol: choice.rememberProtocol,
      send: answering(sent, script.send),
      getTask: answering(polled, script.getTask ?? []),
      cancelTask: answering(canceled, script.cancelTask ?? []),
      ...streams
    }).pipe(Context.add(A2ATransportTest, {
      sent: readAll(sent),
      polled: readAll(polled),
      canceled: readAll(canceled),
      cardReads: readAll(cardReads),
      streamed: readAll(streamed),
      subscribed: readAll(subscribed)
    }))
  }))

/**
 * A `Message` reply with one text part.
 *
 * @since 0.1.0
 * @category constructors
 */
export const message = (text: string): MessageReply => {
  const raw = { kind: "message", role: "agent", messageId: "reply", parts: [{ kind: "text", text }] }
  return new MessageReply({ message: { ...raw, artifacts: [] }, raw })
}

/**
 * A `Task` reply in the given state, with an artifact (completed) or a status message (otherwise).
 *
 * @since 0.1.0
 * @category constructors
 */
export const task = (state: TaskState, options: { readonly id?: string; readonly text?: string } = {}): TaskReply => {
  const id = options.id ?? "task-1"
  const text = options.text
  const raw = {
    kind: "task" as const,
    id,
    contextId: "ctx-1",
    status: state !== "completed" && text !== undefined
      ? { state, message: { kind: "message", role: "agent", parts: [{ kind: "text", text }], artifacts: [] } }
      : { state },
    artifacts: state === "completed" && text !== undefined ? [{ parts: [{ kind: "text", text }] }] : [],
    parts: []
  }
  return new TaskReply({ task: raw, raw })
}

/**
 * The proxy's 202 `{"queued": true}`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const queued = (
  options: { readonly queueId?: string; readonly queueDepth?: number; readonly message?: string } = {}
): QueuedReply => new QueuedReply(options)

/**
 * A refused connection (a retried transport failure).
 *
 * @since 0.1.0
 * @category constructors
 */
export const refused = (url = "http://peer.test"): A2ATransportError =>
  new A2ATransportError({ url, reason: "ConnectionRefused", detail: "connection refused (connect ECONNREFUSED)" })

/**
 * A JSON-RPC error answer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rpcError = (code: number, rpcMessage: string): JsonRpcError => new JsonRpcError({ code, rpcMessage })

/**
 * What a strict A2A 1.0 server answers, before running anything, to a request it takes for v0.3.
 *
 * @since 0.2.0
 * @category constructors
 */
export const versionNotSupported = (): JsonRpcError =>
  new JsonRpcError({
    code: -32009,
    rpcMessage: "The requested A2A protocol version '0.3' is not supported. Supported versions: 1.0",
    data: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "VERSION_NOT_SUPPORTED", domain: "a2a-protocol.org" }],
    reason: "VERSION_NOT_SUPPORTED",
    protocolVersion: "0.3"
  })

/**
 * A stream's status update of task `taskId` (default `task-1`), with a progress message.
 *
 * @since 0.4.0
 * @category constructors
 */
export const statusUpdate = (
  state: TaskState,
  options: { readonly taskId?: string; readonly message?: string; readonly final?: boolean } = {}
): TaskStatusUpdate =>
  new TaskStatusUpdate({
    taskId: options.taskId ?? "task-1",
    state,
    ...(options.message === undefined ? {} : { message: options.message }),
    final: options.final ?? (state !== "submitted" && state !== "working"),
    raw: { kind: "status-update", state, message: options.message }
  })

/**
 * A stream's artifact chunk of task `taskId` (default `task-1`), appended to the artifact by default.
 *
 * @since 0.4.0
 * @category constructors
 */
export const artifactChunk = (
  text: string,
  options: { readonly taskId?: string; readonly artifactId?: string; readonly append?: boolean; readonly lastChunk?: boolean } = {}
): TaskArtifactUpdate =>
  new TaskArtifactUpdate({
    taskId: options.taskId ?? "task-1",
    artifactId: options.artifactId ?? "answer",
    text,
    append: options.append ?? true,
    lastChunk: options.lastChunk ?? false,
    raw: { kind: "artifact-update", text }
  })

/**
 * A stream cut before its final event (a dropped connection).
 *
 * @since 0.4.0
 * @category constructors
 */
export const dropped = (url = "http://peer.test"): A2ATransportError =>
  new A2ATransportError({ url, reason: "ConnectionReset", detail: "the stream ended before its final event" })
