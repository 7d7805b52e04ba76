/**
 * A local A2A peer over real HTTP whose behaviour a test or a demo scripts: latency,
 * capacity, reply text, Task or Message results, JSON-RPC errors, HTTP errors and
 * dropped connections. It speaks A2A 1.0 (`SendMessage`, `GetTask`, `CancelTask`),
 * v0.3 (`message/send`, `tasks/get`, `tasks/cancel`), or both as a compatible peer,
 * serves a matching agent card, and answers requests in a version it does not speak
 * as the official `@a2a-js/sdk` servers do. With `stream` in its behaviour it also streams
 * (`SendStreamingMessage` / `message/stream`, `SubscribeToTask` / `tasks/resubscribe` as
 * Server-Sent Events) and says so in its card.
 *
 * @since 0.1.0
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Chunk, Clock, Duration, Effect, Either, HashMap, Option, Ref, Schema, Stream } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import type { ProtocolVersion } from "../services/A2A.js"
import { answerText, Message, messageFromV1, V1Message, VERSION_HEADER } from "../services/A2A.js"

/**
 * How the peer answers a send.
 *
 * @since 0.1.0
 * @category models
 */
export interface Behaviour {
  /** Time before the answer (for `result: "task"`: before the task completes). */
  readonly latency?: Duration.DurationInput | undefined
  /** Concurrent requests it serves; beyond that it answers 503 busy with `Retry-After`. */
  readonly capacity?: number | undefined
  /** The answer text for a task text (default `done: <task>`). */
  readonly reply?: ((task: string) => string) | undefined
  /** Answer with a `Message` (default) or a `Task` that is `working` until `latency` has passed. */
  readonly result?: "message" | "task" | undefined
  /**
   * Answer with this JSON-RPC error instead; a 1.0 answer carries `reason` as a
   * `google.rpc.ErrorInfo` in `data`, as 1.0 servers do.
   */
  readonly rpcError?: { readonly code: number; readonly message: string; readonly reason?: string | undefined } | undefined
  /** Answer with this HTTP status and `{"error": ...}` instead. */
  readonly status?: number | undefined
  /** Close the connection without answering. */
  readonly drop?: boolean | undefined
  /**
   * Stream: the card says `capabilities.streaming: true`, and a streaming send gets the task
   * (`submitted`), then one `working` status update per `updates` text (the text is its message),
   * one artifact chunk per `chunks` text (appended to the first; the last is `lastChunk`), then the
   * `completed` status (the answer is the chunks joined), one event every `interval` (default 20 ms).
   * A plain send (or `GetTask`) sees the same task on the same timeline. Without it, the streaming
   * methods are answered "unsupported operation" (-32004), as the SDK servers answer them.
   */
  readonly stream?: StreamScript | undefined
}

/**
 * What a streaming peer sends, and when.
 *
 * @since 0.4.0
 * @category models
 */
export interface StreamScript {
  readonly updates?: ReadonlyArray<string> | undefined
  readonly chunks?: ReadonlyArray<string> | undefined
  readonly interval?: Duration.DurationInput | undefined
  /**
   * Drop the connection (close the socket mid-response) after this many events of a stream, once
   * for the whole peer: the next stream (a resubscribe) runs to its end.
   */
  readonly dropAfter?: number | undefined
}

/**
 * The versions a peer speaks: strict `1.0` (as `@a2a-js/sdk` 1.x by default), `0.3`
 * (as `@a2a-js/sdk` 0.3.x), or `both` (1.x with its v0.3 compatibility layer, which
 * dispatches by the `A2A-Version` header: none or `0.3` is v0.3, `1.0` is 1.0).
 *
 * @since 0.2.0
 * @category models
 */
export type Protocol = ProtocolVersion | "both"

/**
 * A request the peer received.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerRequest {
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
}

/**
 * What the peer answered to a JSON-RPC request.
 *
 * @since 0.3.0
 * @category models
 */
export interface PeerAnswer {
  /** The method of the request it answers. */
  readonly method: string
  /** The JSON-RPC `id` of that request. */
  readonly id: unknown
  readonly status: number
  /** The JSON body (a JSON-RPC result or error, or `{"error": ...}` with an HTTP status); `undefined` when there is none. */
  readonly body: unknown
}

/**
 * A running local peer.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalPeer {
  /** Its A2A JSON-RPC endpoint (what discovery hands out). */
  readonly url: string
  /** The versions it speaks. */
  readonly protocol: Protocol
  /** Replaces the behaviour; a function gets the 0-based index of the send it answers. */
  readonly setBehaviour: (behaviour: Behaviour | ((call: number) => Behaviour)) => Effect.Effect<void>
  /** Every JSON-RPC request received, in order, including those answered with a version error. */
  readonly requests: Effect.Effect<ReadonlyArray<PeerRequest>>
  /** Its answers to those requests, in the order it gave them (a request still being served has none yet). */
  readonly answers: Effect.Effect<ReadonlyArray<PeerAnswer>>
  /** Every request for its agent card (`GET /.well-known/agent-card.json`), in order. */
  readonly cardRequests: Effect.Effect<ReadonlyArray<PeerRequest>>
  /** Requests being served right now. */
  readonly active: Effect.Effect<number>
}

/**
 * How to start a peer.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly name?: string | undefined
  readonly behaviour?: Behaviour | undefined
  /** The versions it speaks (default `1.0`, the current spec). */
  readonly protocol?: Protocol | undefined
  /** Serve an agent card at the well-known path (default `true`); without, that path is 404. */
  readonly card?: boolean | undefined
}

const RpcRequest = Schema.Struct({
  id: Schema.optional(Schema.Union(Schema.String, Schema.Number, Schema.Null)),
  method: Schema.String,
  params: Schema.optional(Schema.Struct({
    id: Schema.optional(Schema.String),
    message: Schema.optional(Schema.Unknown)
  }))
})
type RpcRequest = typeof RpcRequest.Type
const decodeRequest = Schema.decodeUnknownEither(Schema.parseJson(RpcRequest))
const parseAny = Schema.decodeUnknownEither(Schema.parseJson())
const decodeMessage = Schema.decodeUnknownOption(Message)
const decodeV1Message = Schema.decodeUnknownOption(V1Message)

/** The methods of each version, by what they do. */
const METHODS = {
  "1.0": {
    send: "SendMessage",
    get: "GetTask",
    cancel: "CancelTask",
    stream: "SendStreamingMessage",
    subscribe: "SubscribeToTask"
  },
  "0.3": {
    send: "message/send",
    get: "tasks/get",
    cancel: "tasks/cancel",
    stream: "message/stream",
    subscribe: "tasks/resubscribe"
  }
} as const

type Answer = { readonly result: unknown } | { readonly error: unknown }

const rpc = (id: unknown, payload: Answer) => HttpServerResponse.unsafeJson({ jsonrpc: "2.0", id: id ?? null, ...payload })

// A 1.0 error names its reason in a google.rpc.ErrorInfo; a v0.3 error has no data.
const rpcError = (version: ProtocolVersion, code: number, message: string, reason?: string): Answer => ({
  error: version === "1.0" && reason !== undefined
    ? {
      code,
      message,
      data: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "a2a-protocol.org" }]
    }
    : { code, message }
})

/**
 * The version a request is taken in, or the error the SDK servers give before running
 * anything: a strict 1.0 server needs `A2A-Version: 1.0` exactly (none counts as 0.3);
 * a compatible one dispatches by the header; a v0.3 server has no version check.
 */
const dialectOf = (protocol: Protocol, header: string | undefined): Either.Either<ProtocolVersion, Answer> => {
  if (protocol === "0.3") return Either.right("0.3")
  const asked = header ?? "0.3"
  if (asked === "1.0") return Either.right("1.0")
  if (protocol === "both" && asked === "0.3") return Either.right("0.3")
  const supported = protocol === "both" ? "1.0, 0.3" : "1.0"
  return Either.left(rpcError(
    "1.0",
    -32009,
    `The requested A2A protocol version '${asked}' is not supported. Supported versions: ${supported}`,
    "VERSION_NOT_SUPPORTED"
  ))
}

// A method of the other version (or none): a 1.0 server says "Invalid method.", a v0.3 one names it.
const unknownMethod = (version: ProtocolVersion, method: string): Answer =>
  version === "1.0"
    ? { error: { code: -32601, message: "Invalid method." } }
    : { error: { code: -32601, message: `Method not found: ${method}` } }

// The text of the sent message, read in the version it came in.
const taskText = (version: ProtocolVersion, message: unknown): string => {
  const decoded = version === "1.0"
    ? Option.map(decodeV1Message(message), messageFromV1)
    : decodeMessage(message)
  return Option.match(decoded, { onNone: () => "", onSome: (m) => answerText(m) ?? "" })
}

type TaskState = "submitted" | "working" | "completed" | "canceled"

interface PeerTask {
  readonly doneAt: number
  readonly text: string
  readonly canceled: boolean
  /** A streaming task: its scripted events, the i-th (0-based) at `startedAt + (i + 1) * interval`. */
  readonly script?: {
    readonly startedAt: number
    readonly interval: number
    readonly events: ReadonlyArray<ScriptedEvent>
  } | undefined
}

type ScriptedEvent =
  | { readonly _tag: "status"; readonly state: TaskState; readonly text?: string | undefined }
  | { readonly _tag: "chunk"; readonly text: string; readonly append: boolean; readonly lastChunk: boolean }

const V1_STATE: Readonly<Record<TaskState, string>> = {
  submitted: "TASK_STATE_SUBMITTED",
  working: "TASK_STATE_WORKING",
  completed: "TASK_STATE_COMPLETED",
  canceled: "TASK_STATE_CANCELED"
}

// A task as each version writes it; proto3 JSON (1.0) leaves out an empty artifact list.
const taskJson = (version: ProtocolVersion, id: string, state: TaskState, text: string) => {
  const answered = state === "completed"
  if (version === "0.3") {
    return {
      kind: "task",
      id,
      contextId: `ctx-${id}`,
      status: { state },
      artifacts: answered ? [{ artifactId: `${id}-answer`, parts: [{ kind: "text", text }] }] : []
    }
  }
  return {
    id,
    contextId: `ctx-${id}`,
    status: { state: V1_STATE[state] },
    ...(answered ? { artifacts: [{ artifactId: `${id}-answer`, parts: [{ text, mediaType: "text/plain" }] }] } : {})
  }
}

const messageJson = (version: ProtocolVersion, messageId: string, text: string) =>
  version === "0.3"
    ? { kind: "message", role: "agent", messageId, contextId: `ctx-${messageId}`, parts: [{ kind: "text", text }] }
    : { messageId, contextId: `ctx-${messageId}`, role: "ROLE_AGENT", parts: [{ text, mediaType: "text/plain" }] }

// A 1.0 send result is wrapped (`{message}` / `{task}`); a v0.3 one is the object itself.
const sendResult = (version: ProtocolVersion, kind: "message" | "task", value: unknown): unknown =>
  version === "1.0" ? { [kind]: value } : value

// Every answer is built with `unsafeJson` (a byte body); a dropped connection's empty one has none.
const jsonOf = (response: HttpServerResponse.HttpServerResponse): unknown =>
  response.body._tag === "Uint8Array"
    ? Either.getOrUndefined(parseAny(new TextDecoder().decode(response.body.body)))
    : undefined

const stateOf = (task: PeerTask, now: number): TaskState =>
  task.canceled
    ? "canceled"
    : now >= task.doneAt
    ? "completed"
    : task.script !== undefined && now < task.script.startedAt + task.script.interval
    ? "submitted"
    : "working"

const DEFAULT_STREAM_INTERVAL = 20

// The scripted events of a streaming task: the updates, the chunks, the completion.
const scriptOf = (stream: StreamScript): ReadonlyArray<ScriptedEvent> => {
  const chunks = stream.chunks ?? []
  return [
    ...(stream.updates ?? []).map((text): ScriptedEvent => ({ _tag: "status", state: "working", text })),
    ...chunks.map((text, i): ScriptedEvent => ({ _tag: "chunk", text, append: i > 0, lastChunk: i === chunks.length - 1 })),
    { _tag: "status", state: "completed" }
  ]
}

// One scripted event as each version writes it (1.0: a `StreamResponse`; v0.3: an event with `kind`).
const eventJson = (version: ProtocolVersion, id: string, event: ScriptedEvent, n: number): unknown => {
  const contextId = `ctx-${id}`
  if (event._tag === "chunk") {
    const artifactId = `${id}-answer`
    return version === "1.0"
      ? {
        artifactUpdate: {
          taskId: id,
          contextId,
          artifact: { artifactId, parts: [{ text: event.text, mediaType: "text/plain" }] },
          ...(event.append ? { append: true } : {}),
          ...(event.lastChunk ? { lastChunk: true } : {})
        }
      }
      : {
        kind: "artifact-update",
        taskId: id,
        contextId,
        artifact: { artifactId, parts: [{ kind: "text", text: event.text }] },
        append: event.append,
        lastChunk: event.lastChunk
      }
  }
  const messageId = `${id}-status-${n}`
  if (version === "1.0") {
    return {
      statusUpdate: {
        taskId: id,
        contextId,
        status: {
          state: V1_STATE[event.state],
          ...(event.text === undefined
            ? {}
            : { message: { messageId, contextId, taskId: id, role: "ROLE_AGENT", parts: [{ text: event.text, mediaType: "text/plain" }] } })
        }
      }
    }
  }
  return {
    kind: "status-update",
    taskId: id,
    contextId,
    status: {
      state: event.state,
      ...(event.text === undefined
        ? {}
        : { message: { kind: "message", messageId, contextId, taskId: id, role: "agent", parts: [{ kind: "text", text: event.text }] } })
    },
    final: event.state === "completed" || event.state === "canceled"
  }
}

const sseFrame = (id: unknown, result: unknown): Uint8Array =>
  new TextEncoder().encode(`data: ${JSON.stringify({ jsonrpc: "2.0", id: id ?? null, result })}\n\n`)

/**
 * Starts a peer on 127.0.0.1 (port 0) for the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<LocalPeer, HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    const protocol = options.protocol ?? "1.0"
    const name = options.name ?? "local-peer"
    const behaviourOf = yield* Ref.make<(call: number) => Behaviour>(() => options.behaviour ?? {})
    const sends = yield* Ref.make(0)
    const active = yield* Ref.make(0)
    const tasks = yield* Ref.make(HashMap.empty<string, PeerTask>())
    const requests = yield* Ref.make(Chunk.empty<PeerRequest>())
    const cardRequests = yield* Ref.make(Chunk.empty<PeerRequest>())
    const answers = yield* Ref.make(Chunk.empty<PeerAnswer>())
    // Whether a stream was already dropped (`dropAfter` drops one, once).
    const dropped = yield* Ref.make(false)

    // Beyond `capacity`, nothing is taken; the check and the count are one step.
    const enter = (capacity: number | undefined) =>
      Ref.modify(active, (n) => (capacity !== undefined && n >= capacity ? [false, n] : [true, n + 1]))

    const busy = () =>
      HttpServerResponse.unsafeJson(
        { error: "workspace agent busy — retry after a short backoff", busy: true, retry_after: 1 },
        { status: 503, headers: { "retry-after": "1" } }
      )

    const newTask = (latency: Duration.DurationInput | undefined, text: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(tasks, (all) => {
          const id = `task-${HashMap.size(all) + 1}`
          return [id, HashMap.set(all, id, { doneAt: now + Duration.toMillis(latency ?? 0), text, canceled: false })]
        }))

    // A streaming task: its events on a timeline from now; done with the last one.
    const newStreamingTask = (stream: StreamScript) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(tasks, (all) => {
          const id = `task-${HashMap.size(all) + 1}`
          const events = scriptOf(stream)
          const interval = stream.interval === undefined ? DEFAULT_STREAM_INTERVAL : Duration.toMillis(stream.interval)
          const task: PeerTask = {
            doneAt: now + events.length * interval,
            text: (stream.chunks ?? []).join(""),
            canceled: false,
            script: { startedAt: now, interval, events }
          }
          return [id, HashMap.set(all, id, task)]
        }))

    // Whether the peer streams now: its behaviour for the next send has `stream`.
    const streamsNow = Effect.flatMap(Ref.get(behaviourOf), (behaviour) =>
      Effect.map(Ref.get(sends), (n) => behaviour(n).stream !== undefined))

    const unsupported = (version: ProtocolVersion, method: string) =>
      rpcError(version, -32004, `Unsupported operation: ${method} requires streaming capability.`, "UNSUPPORTED_OPERATION")

    // The events of a task from now on, as SSE: the task as it is, then its remaining events at their
    // times (a canceled task ends with its canceled status). `dropAfter` (once) closes the socket
    // after that many events.
    const streamTask = (
      version: ProtocolVersion,
      call: RpcRequest,
      request: HttpServerRequest.HttpServerRequest,
      id: string,
      dropAfter: number | undefined
    ) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const task = Option.getOrThrow(HashMap.get(yield* Ref.get(tasks), id))
        const state = stateOf(task, now)
        const first = sseFrame(call.id, sendResult(version, "task", taskJson(version, id, state, task.text)))
        const timeline = task.script === undefined
          ? [{ at: task.doneAt, n: 1, event: { _tag: "status", state: "completed" } as ScriptedEvent }]
          : task.script.events.map((event, i) => ({ at: task.script!.startedAt + (i + 1) * task.script!.interval, n: i + 1, event }))
        const remaining = state === "completed" || state === "canceled" ? [] : timeline.filter(({ at }) => at > now)
        const events = Stream.fromIterable(remaining).pipe(
          Stream.mapEffect(({ at, event, n }) =>
            Effect.gen(function*() {
              const wait = at - (yield* Clock.currentTimeMillis)
              if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
              const current = Option.getOrThrow(HashMap.get(yield* Ref.get(tasks), id))
              const sent: ScriptedEvent = current.canceled ? { _tag: "status", state: "canceled" } : event
              return { sent, frame: sseFrame(call.id, eventJson(version, id, sent, n)) }
            })
          ),
          Stream.takeUntil(({ sent }) => sent._tag === "status" && (sent.state === "completed" || sent.state === "canceled")),
          Stream.map(({ frame }) => frame)
        )
        const all = Stream.concat(Stream.make(first), events)
        const drop = dropAfter !== undefined && 1 + remaining.length > dropAfter &&
          !(yield* Ref.getAndSet(dropped, true))
        const body = drop
          ? Stream.concat(
            Stream.take(all, dropAfter),
            // Let the last frame reach the socket, then close it mid-response.
            Stream.drain(Stream.fromEffect(Effect.zipRight(
              Effect.sleep(Duration.millis(20)),
              Effect.sync(() => NodeHttpServerRequest.toIncomingMessage(request).socket.destroy())
            )))
          )
          : all
        return HttpServerResponse.stream(body, { contentType: "text/event-stream", headers: { "cache-control": "no-cache" } })
      })

    const sendStreaming = (version: ProtocolVersion, call: RpcRequest, request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const index = yield* Ref.getAndUpdate(sends, (n) => n + 1)
        const behaviour = (yield* Ref.get(behaviourOf))(index)
        const stream = behaviour.stream
        if (stream === undefined) return rpc(call.id, unsupported(version, call.method))
        const id = yield* newStreamingTask(stream)
        return yield* streamTask(version, call, request, id, stream.dropAfter)
      })

    const subscribe = (version: ProtocolVersion, call: RpcRequest, request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const id = call.params?.id ?? ""
        const task = HashMap.get(yield* Ref.get(tasks), id)
        if (Option.isNone(task)) return rpc(call.id, taskNotFound(version, id))
        if (task.value.script === undefined && !(yield* streamsNow)) return rpc(call.id, unsupported(version, call.method))
        const behaviour = (yield* Ref.get(behaviourOf))(yield* Ref.get(sends))
        return yield* streamTask(version, call, request, id, behaviour.stream?.dropAfter)
      })

    const taskNotFound = (version: ProtocolVersion, id: string) =>
      rpcError(version, -32001, `Task not found: ${id}`, "TASK_NOT_FOUND")

    const getTask = (version: ProtocolVersion, call: RpcRequest) =>
      Effect.gen(function*() {
        const id = call.params?.id ?? ""
        const task = HashMap.get(yield* Ref.get(tasks), id)
        if (Option.isNone(task)) return rpc(call.id, taskNotFound(version, id))
        const state = stateOf(task.value, yield* Clock.currentTimeMillis)
        return rpc(call.id, { result: taskJson(version, id, state, task.value.text) })
      })

    // A working task is canceled; a canceled one is returned as it is; a completed one cannot be.
    const cancelTask = (version: ProtocolVersion, call: RpcRequest) =>
      Effect.gen(function*() {
        const id = call.params?.id ?? ""
        const now = yield* Clock.currentTimeMillis
        const task = HashMap.get(yield* Ref.get(tasks), id)
        if (Option.isNone(task)) return rpc(call.id, taskNotFound(version, id))
        if (stateOf(task.value, now) === "completed") {
          return rpc(call.id, rpcError(version, -32002, `Task not cancelable: ${id}`, "TASK_NOT_CANCELABLE"))
        }
        const canceled: PeerTask = { ...task.value, canceled: true }
        yield* Ref.update(tasks, HashMap.set(id, canceled))
        return rpc(call.id, { result: taskJson(version, id, "canceled", task.value.text) })
      })

    // What a send gets, by behaviour; `index` is the send's 0-based number.
    const answer = (version: ProtocolVersion, call: RpcRequest, behaviour: Behaviour, index: number) =>
      Effect.gen(function*() {
        const asked = taskText(version, call.params?.message)
        const text = behaviour.reply?.(asked) ?? `done: ${asked}`
        if (behaviour.stream !== undefined) {
          const id = yield* newStreamingTask(behaviour.stream)
          return rpc(call.id, { result: sendResult(version, "task", taskJson(version, id, "submitted", "")) })
        }
        if (behaviour.result === "task") {
          const id = yield* newTask(behaviour.latency, text)
          return rpc(call.id, { result: sendResult(version, "task", taskJson(version, id, "working", text)) })
        }
        if (behaviour.latency !== undefined) yield* Effect.sleep(behaviour.latency)
        if (behaviour.status !== undefined) {
          return HttpServerResponse.unsafeJson({ error: Http.STATUS_CODES[behaviour.status] ?? "error" }, {
            status: behaviour.status
          })
        }
        const scripted = behaviour.rpcError
        if (scripted !== undefined) return rpc(call.id, rpcError(version, scripted.code, scripted.message, scripted.reason))
        return rpc(call.id, { result: sendResult(version, "message", messageJson(version, `${name}-${index + 1}`, text)) })
      })

    const send = (version: ProtocolVersion, call: RpcRequest, request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const index = yield* Ref.getAndUpdate(sends, (n) => n + 1)
        const behaviour = (yield* Ref.get(behaviourOf))(index)
        if (behaviour.drop === true) {
          NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
          return HttpServerResponse.empty()
        }
        if (!(yield* enter(behaviour.capacity))) return busy()
        return yield* answer(version, call, behaviour, index).pipe(Effect.ensuring(Ref.update(active, (n) => n - 1)))
      })

    const dispatch = (version: ProtocolVersion, call: RpcRequest, request: HttpServerRequest.HttpServerRequest) => {
      const methods = METHODS[version]
      switch (call.method) {
        case methods.send:
          return send(version, call, request)
        case methods.get:
          return getTask(version, call)
        case methods.cancel:
          return cancelTask(version, call)
        case methods.stream:
          return sendStreaming(version, call, request)
        case methods.subscribe:
          return subscribe(version, call, request)
        default:
          return Effect.succeed(rpc(call.id, unknownMethod(version, call.method)))
      }
    }

    const handle = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const raw = yield* Effect.orElseSucceed(request.text, () => "")
      const decoded = decodeRequest(raw)
      if (Either.isLeft(decoded)) return rpc(null, { error: { code: -32700, message: "Parse error" } })
      const call = decoded.right
      const seen = { method: call.method, headers: request.headers, body: Either.getOrUndefined(parseAny(raw)) }
      yield* Ref.update(requests, Chunk.append(seen))
      const response = yield* Either.match(dialectOf(protocol, request.headers[VERSION_HEADER]), {
        onLeft: (rejected) => Effect.succeed(rpc(call.id, rejected)),
        onRight: (version) => dispatch(version, call, request)
      })
      const answer = { method: call.method, id: call.id, status: response.status, body: jsonOf(response) }
      yield* Ref.update(answers, Chunk.append(answer))
      return response
    })

    const interfaceOf = (version: ProtocolVersion) => ({
      url: `${base}/a2a`,
      protocolBinding: "JSONRPC",
      tenant: "",
      protocolVersion: version
    })
    const cardV1 = (versions: ReadonlyArray<ProtocolVersion>) => ({
      name,
      description: "A scripted A2A peer",
      supportedInterfaces: versions.map(interfaceOf),
      version: "1.0.0",
      capabilities: { streaming: false, pushNotifications: false, extensions: [] },
      securitySchemes: {},
      securityRequirements: [],
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills: [],
      signatures: []
    })
    const cardV03 = () => ({
      name,
      description: "A scripted A2A v0.3 peer",
      url: `${base}/a2a`,
      version: "0.1.0",
      protocolVersion: "0.3.0",
      capabilities: { streaming: false, pushNotifications: false },
      defaultInputModes: ["text/plain"],
      defaultOutputModes: ["text/plain"],
      skills: []
    })
    // A compatible server answers a reader without `A2A-Version: 1.0` with a hybrid: the v0.3 fields
    // next to the full `supportedInterfaces`.
    const cardFor = (header: string | undefined) => {
      switch (protocol) {
        case "1.0":
          return { body: cardV1(["1.0"]), headers: {} }
        case "0.3":
          return { body: cardV03(), headers: {} }
        case "both":
          return header === "1.0"
            ? { body: cardV1(["1.0", "0.3"]), headers: { vary: VERSION_HEADER } }
            : {
              body: { ...cardV03(), protocolVersion: "0.3", preferredTransport: "JSONRPC", ...cardV1(["1.0", "0.3"]) },
              headers: { vary: VERSION_HEADER }
            }
      }
    }

    const card = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      yield* Ref.update(cardRequests, Chunk.append({ method: request.method, headers: request.headers, body: undefined }))
      const { body, headers } = cardFor(request.headers[VERSION_HEADER])
      const streaming = yield* streamsNow
      return HttpServerResponse.unsafeJson({ ...body, capabilities: { ...body.capabilities, streaming } }, { headers })
    })

    const rpcRoutes = HttpRouter.empty.pipe(HttpRouter.post("/a2a", handle))
    const router = options.card === false
      ? rpcRoutes
      : HttpRouter.get(rpcRoutes, "/.well-known/agent-card.json", card)
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: 0, host: "127.0.0.1" })
    yield* server.serve(router)
    const base = `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`

    const readAll = <A>(log: Ref.Ref<Chunk.Chunk<A>>) => Effect.map(Ref.get(log), Chunk.toReadonlyArray)
    return {
      url: `${base}/a2a`,
      protocol,
      setBehaviour: (behaviour) => Ref.set(behaviourOf, typeof behaviour === "function" ? behaviour : () => behaviour),
      requests: readAll(requests),
      answers: readAll(answers),
      cardRequests: readAll(cardRequests),
      active: Ref.get(active)
    }
  })
