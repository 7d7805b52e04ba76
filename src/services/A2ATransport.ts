/**
 * Sends A2A JSON-RPC requests to a peer, in 1.0 or v0.3, and classifies what comes back.
 *
 * One `send`, `getTask` or `cancelTask` is one HTTP request in the version it is given:
 * retries and the version fallback belong to the delegation program, which retries only
 * `A2ATransportError`. `protocolFor` says which version (and URL) to use for a peer.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect, Stream } from "effect"
import type { SendMetadata } from "./A2A.js"
import { Message, ProtocolVersion, Task, TaskState } from "./A2A.js"
import type { PeerEndpoint } from "./Discovery.js"

/**
 * Where and in which A2A version to talk to one peer.
 *
 * @since 0.2.0
 * @category models
 */
export interface PeerProtocol {
  readonly version: ProtocolVersion
  /** The JSON-RPC URL: the discovered one, or for 1.0 the one the peer's agent card names. */
  readonly url: string
  /**
   * How the version was chosen: `pinned` (`A2A_PROTOCOL`), `card` (the peer's agent card),
   * `learned` (the peer's answer to an earlier delegation), `guess` (nothing known: 1.0 first) or
   * `proxy` (in `auto`, a peer behind the platform's proxy: 0.3, the only version the proxy carries).
   * Only a `guess` or a `learned` version is switched on a version answer.
   */
  readonly source: "pinned" | "card" | "learned" | "guess" | "proxy"
  /**
   * The peer's agent card says `capabilities.streaming`: the task may be sent with
   * `SendStreamingMessage` / `message/stream` and followed as Server-Sent Events. Unknown (no card
   * read) counts as no.
   */
  readonly streaming?: boolean | undefined
}

/**
 * The peer answered `SendMessage` / `message/send` with a `Message`: the delegation is done.
 *
 * @since 0.1.0
 * @category models
 */
export class MessageReply extends Schema.TaggedClass<MessageReply>("effect-a2a-delegation/MessageReply")(
  "MessageReply",
  { message: Message, raw: Schema.Unknown }
) {}

/**
 * The peer answered with a `Task` (from a send, `GetTask`/`tasks/get` or `CancelTask`/`tasks/cancel`).
 * `raw` is the task as the peer sent it (1.0 or v0.3 JSON); `task` is it in the library's model.
 *
 * @since 0.1.0
 * @category models
 */
export class TaskReply extends Schema.TaggedClass<TaskReply>("effect-a2a-delegation/TaskReply")(
  "TaskReply",
  { task: Task, raw: Schema.Unknown }
) {}

/**
 * HTTP 202 `{"queued": true}` from a peer proxy: accepted, delivered later.
 * A success, never retried.
 *
 * @since 0.1.0
 * @category models
 */
export class QueuedReply extends Schema.TaggedClass<QueuedReply>("effect-a2a-delegation/QueuedReply")(
  "QueuedReply",
  {
    queueId: Schema.optional(Schema.String),
    queueDepth: Schema.optional(Schema.Int),
    message: Schema.optional(Schema.String)
  }
) {}

/**
 * A `TaskStatusUpdateEvent` of a peer's stream: the task's new state, with the text of the status
 * message the peer attached (its progress note), if any. `final` marks the last event of the stream.
 *
 * @since 0.4.0
 * @category models
 */
export class TaskStatusUpdate extends Schema.TaggedClass<TaskStatusUpdate>("effect-a2a-delegation/TaskStatusUpdate")(
  "TaskStatusUpdate",
  {
    taskId: Schema.String,
    state: TaskState,
    /** The text parts of the status message, joined. */
    message: Schema.optional(Schema.String),
    final: Schema.Boolean,
    raw: Schema.Unknown
  }
) {}

/**
 * A `TaskArtifactUpdateEvent` of a peer's stream: a chunk of an artifact's text. `append` adds it to
 * what came before for the same `artifactId` (otherwise it replaces it); `lastChunk` ends the artifact.
 *
 * @since 0.4.0
 * @category models
 */
export class TaskArtifactUpdate extends Schema.TaggedClass<TaskArtifactUpdate>(
  "effect-a2a-delegation/TaskArtifactUpdate"
)(
  "TaskArtifactUpdate",
  {
    taskId: Schema.String,
    artifactId: Schema.String,
    /** The text parts of the chunk, joined. */
    text: Schema.String,
    append: Schema.Boolean,
    lastChunk: Schema.Boolean,
    raw: Schema.Unknown
  }
) {}

/**
 * One event of a streaming answer (`SendStreamingMessage` / `message/stream`, `SubscribeToTask` /
 * `tasks/resubscribe`): a `Message` (which ends it), the `Task`, a status update or an artifact chunk.
 *
 * @since 0.4.0
 * @category models
 */
export type StreamEvent = MessageReply | TaskReply | TaskStatusUpdate | TaskArtifactUpdate

/**
 * Every successful reply to a send.
 *
 * @since 0.1.0
 * @category models
 */
export type SendReply = MessageReply | TaskReply | QueuedReply

/**
 * The request did not get an answer it is safe to act on, and is safe to send
 * again: connection refused/reset, DNS, timeout, or HTTP 408/429/502/503/504. A stream that
 * ended or broke before its final event is `StreamDropped`; one silent for its idle bound is `Timeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export class A2ATransportError extends Schema.TaggedError<A2ATransportError>(
  "effect-a2a-delegation/A2ATransportError"
)("A2ATransportError", {
  url: Schema.String,
  reason: Schema.Literal("ConnectionRefused", "ConnectionReset", "Dns", "Timeout", "Network", "Status", "StreamDropped"),
  status: Schema.optional(Schema.Int),
  /** `Retry-After`, in milliseconds, when the peer sent one. */
  retryAfterMillis: Schema.optional(Schema.Number),
  detail: Schema.String,
  /** What failed underneath, e.g. the `HttpClientError` with the Node error (`ECONNREFUSED`, ...). */
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return this.reason === "Status"
      ? `Transport error: HTTP ${this.status ?? 0}${this.detail === "" ? "" : ` (${this.detail})`}`
      : `Transport error: ${this.detail}`
  }
}

/**
 * The request could not be sent at all: its URL does not parse (`InvalidUrl`) or its
 * body could not be encoded (`Encode`). Nothing reached the peer; never re-sent.
 *
 * @since 0.2.0
 * @category errors
 */
export class A2ARequestError extends Schema.TaggedError<A2ARequestError>(
  "effect-a2a-delegation/A2ARequestError"
)("A2ARequestError", {
  url: Schema.String,
  reason: Schema.Literal("InvalidUrl", "Encode"),
  detail: Schema.String,
  /** The `HttpClientError` behind it. */
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : ` (${this.detail})`
    return this.reason === "InvalidUrl"
      ? `Invalid peer URL ${JSON.stringify(this.url)}${detail}`
      : `Could not encode the request to ${this.url}${detail}`
  }
}

/**
 * The peer answered, but not with something to act on; never re-sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class A2AResponseError extends Schema.TaggedError<A2AResponseError>(
  "effect-a2a-delegation/A2AResponseError"
)("A2AResponseError", {
  url: Schema.String,
  reason: Schema.Literal(
    "Status",
    "UnexpectedAccepted",
    "DeliveryConfirmed",
    "Busy",
    "InvalidJson",
    "NotJsonRpc",
    "IdMismatch",
    "EmptyReply",
    "InvalidResult",
    "TooLarge"
  ),
  status: Schema.Int,
  detail: Schema.String
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : `: ${this.detail}`
    switch (this.reason) {
      case "Status":
        return `Peer answered HTTP ${this.status}${detail}`
      case "UnexpectedAccepted":
        return `Peer answered HTTP 202 without {"queued": true}${detail}`
      case "DeliveryConfirmed":
        return `Peer proxy answered HTTP 502 after delivering the request (delivery_confirmed)${detail}`
      case "Busy":
        return `Peer proxy answered HTTP 503 busy: the peer may already be working on the request, so it was not sent again${detail}`
      case "InvalidJson":
        return `Invalid JSON response (HTTP ${this.status})${detail}`
      case "NotJsonRpc":
        return `Reply is not a JSON-RPC 2.0 response${detail}`
      case "IdMismatch":
        return `JSON-RPC reply id does not match the request${detail}`
      case "EmptyReply":
        return `JSON-RPC reply has neither result nor error${detail}`
      case "InvalidResult":
        return `JSON-RPC result is not an A2A Message or Task${detail}`
      case "TooLarge":
        return `Peer reply (HTTP ${this.status}) is too large${detail}`
    }
  }
}

/**
 * The peer answered with a JSON-RPC error object; the code is kept, and for a 1.0 peer
 * the `reason` of its `google.rpc.ErrorInfo` (e.g. `TASK_NOT_FOUND`, `VERSION_NOT_SUPPORTED`).
 *
 * @since 0.1.0
 * @category errors
 */
export class JsonRpcError extends Schema.TaggedError<JsonRpcError>("effect-a2a-delegation/JsonRpcError")(
  "JsonRpcError",
  {
    code: Schema.Number,
    rpcMessage: Schema.String,
    data: Schema.optional(Schema.Unknown),
    /** The `reason` of the first `google.rpc.ErrorInfo` in `data` (A2A 1.0 errors). */
    reason: Schema.optional(Schema.String),
    /** The A2A version the request was sent in. */
    protocolVersion: Schema.optional(ProtocolVersion)
  }
) {
  override get message(): string {
    const reason = this.reason === undefined ? "" : ` (${this.reason})`
    const text = this.rpcMessage === "" ? "(no message)" : this.rpcMessage
    return `JSON-RPC error ${this.code}${reason}: ${text}${versionHint(this.code, this.protocolVersion)}`
  }
}

// -32009 and -32601 to a send are version answers: say what they mean for the version that was sent.
const versionHint = (code: number, sent: ProtocolVersion | undefined): string => {
  if (code === -32009) {
    return sent === "1.0"
      ? " (A2A version not supported: the peer did not accept this request as A2A 1.0)"
      : " (A2A version not supported: the peer speaks only A2A 1.0, whose requests carry the header" +
        " A2A-Version: 1.0; a proxy that does not forward the header makes every request look like 0.3)"
  }
  if (code === -32601) {
    return sent === "1.0"
      ? " (method not found: the peer may only speak A2A v0.3, whose method is message/send)"
      : " (method not found: the peer may only speak A2A v1.0, which renamed message/send to SendMessage)"
  }
  return ""
}

/**
 * True for the answers a server gives, before running anything, to a request in a
 * version it does not speak: -32009 (version not supported) and -32601 (method not found).
 *
 * @since 0.2.0
 * @category guards
 */
export const isVersionMismatch = (error: A2AError): error is JsonRpcError =>
  error._tag === "JsonRpcError" && (error.code === -32009 || error.code === -32601)

/**
 * Every way a single A2A request can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type A2AError = A2ATransportError | A2ARequestError | A2AResponseError | JsonRpcError

/**
 * One `SendMessage` (1.0) or `message/send` (v0.3) call.
 *
 * @since 0.1.0
 * @category models
 */
export interface SendMessage {
  readonly endpoint: PeerEndpoint
  /** The version and URL to send in (from `protocolFor`). */
  readonly protocol: PeerProtocol
  /** Stable across attempts, so a peer or queue can de-duplicate. */
  readonly messageId: string
  /** The JSON-RPC `id`; changes with every attempt. */
  readonly requestId: string
  readonly delegationId: string
  readonly text: string
  readonly metadata: SendMetadata
}

/**
 * One `GetTask` (1.0) or `tasks/get` (v0.3) call.
 *
 * @since 0.1.0
 * @category models
 */
export interface GetTask {
  readonly endpoint: PeerEndpoint
  /** The version and URL the task was created in. */
  readonly protocol: PeerProtocol
  readonly requestId: string
  readonly taskId: string
}

/**
 * One `CancelTask` (1.0) or `tasks/cancel` (v0.3) call.
 *
 * @since 0.2.0
 * @category models
 */
export interface CancelTask {
  readonly endpoint: PeerEndpoint
  /** The version and URL the task was created in. */
  readonly protocol: PeerProtocol
  readonly requestId: string
  readonly taskId: string
}

/**
 * The A2A client used by delegations.
 *
 * @since 0.1.0
 * @category tags
 */
export class A2ATransport extends Context.Tag("effect-a2a-delegation/A2ATransport")<A2ATransport, {
  /**
   * Which version and URL to use for a peer: pinned, read from its agent card, learned from an
   * earlier answer, 0.3 behind the platform's proxy, or 1.0 as a guess. Cached per peer; never
   * fails (a card that cannot be read leaves the guess).
   */
  readonly protocolFor: (endpoint: PeerEndpoint) => Effect.Effect<PeerProtocol>
  /** Remembers the version a peer accepts, for later delegations to it (after a version answer). */
  readonly rememberProtocol: (endpoint: PeerEndpoint, protocol: PeerProtocol) => Effect.Effect<void>
  /** One `SendMessage` / `message/send` POST. */
  readonly send: (request: SendMessage) => Effect.Effect<SendReply, A2AError>
  /** One `GetTask` / `tasks/get` POST, to follow a task that is still submitted or working. */
  readonly getTask: (request: GetTask) => Effect.Effect<TaskReply, A2AError>
  /** One `CancelTask` / `tasks/cancel` POST; the peer answers with the task (canceled, or as it is). */
  readonly cancelTask: (request: CancelTask) => Effect.Effect<TaskReply, A2AError>
  /**
   * One `SendStreamingMessage` / `message/stream` POST, its Server-Sent Events as a stream. It ends after
   * a `Message` or a final state; a connection that drops (or sends nothing for the idle bound) before
   * that fails with `A2ATransportError`. A peer that refuses to stream answers with a `JsonRpcError`
   * before the first event. Optional: a transport without it is followed by polling.
   */
  readonly sendStream?: ((request: SendMessage) => Stream.Stream<StreamEvent, A2AError>) | undefined
  /**
   * One `SubscribeToTask` / `tasks/resubscribe` POST: the task's events from now on (the first is
   * usually the task itself), ending as `sendStream` does. Optional, as `sendStream`.
   */
  readonly subscribe?: ((request: GetTask) => Stream.Stream<StreamEvent, A2AError>) | undefined
}>() {}

/**
 * True for the failures the delegation program retries.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTransportError = (error: unknown): error is A2ATransportError =>
  error instanceof A2ATransportError
