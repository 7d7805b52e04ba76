/**
 * Sends A2A JSON-RPC requests to a peer and classifies what comes back.
 *
 * One call is one HTTP request: retries belong to the delegation program, which
 * retries only `A2ATransportError`.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"
import type { SendMetadata } from "./A2A.js"
import { Message, Task } from "./A2A.js"
import type { PeerEndpoint } from "./Discovery.js"

/**
 * The peer answered `message/send` with a `Message`: the delegation is done.
 *
 * @since 0.1.0
 * @category models
 */
export class MessageReply extends Schema.TaggedClass<MessageReply>("effect-a2a-delegation/MessageReply")(
  "MessageReply",
  { message: Message, raw: Schema.Unknown }
) {}

/**
 * The peer answered with a `Task` (from `message/send` or `tasks/get`).
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
 * Every successful reply to `message/send`.
 *
 * @since 0.1.0
 * @category models
 */
export type SendReply = MessageReply | TaskReply | QueuedReply

/**
 * The request did not get an answer it is safe to act on, and is safe to send
 * again: connection refused/reset, DNS, timeout, or HTTP 408/429/502/503/504.
 *
 * @since 0.1.0
 * @category errors
 */
export class A2ATransportError extends Schema.TaggedError<A2ATransportError>(
  "effect-a2a-delegation/A2ATransportError"
)("A2ATransportError", {
  url: Schema.String,
  reason: Schema.Literal("ConnectionRefused", "ConnectionReset", "Dns", "Timeout", "Network", "Status"),
  status: Schema.optional(Schema.Int),
  /** `Retry-After`, in milliseconds, when the peer sent one. */
  retryAfterMillis: Schema.optional(Schema.Number),
  detail: Schema.String
}) {
  override get message(): string {
    return this.reason === "Status"
      ? `Transport error: HTTP ${this.status ?? 0}${this.detail === "" ? "" : ` (${this.detail})`}`
      : `Transport error: ${this.detail}`
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
    "InvalidJson",
    "NotJsonRpc",
    "IdMismatch",
    "EmptyReply",
    "InvalidResult"
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
    }
  }
}

/**
 * The peer answered with a JSON-RPC error object; the code is kept.
 *
 * @since 0.1.0
 * @category errors
 */
export class JsonRpcError extends Schema.TaggedError<JsonRpcError>("effect-a2a-delegation/JsonRpcError")(
  "JsonRpcError",
  {
    code: Schema.Number,
    rpcMessage: Schema.String,
    data: Schema.optional(Schema.Unknown)
  }
) {
  override get message(): string {
    const hint = this.code === -32601
      ? " (method not found: the peer may only speak A2A v1.0, which renamed message/send to SendMessage)"
      : ""
    return `JSON-RPC error ${this.code}: ${this.rpcMessage === "" ? "(no message)" : this.rpcMessage}${hint}`
  }
}

/**
 * Every way a single A2A request can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type A2AError = A2ATransportError | A2AResponseError | JsonRpcError

/**
 * One `message/send` call.
 *
 * @since 0.1.0
 * @category models
 */
export interface SendMessage {
  readonly endpoint: PeerEndpoint
  /** Stable across attempts, so a peer or queue can de-duplicate. */
  readonly messageId: string
  /** The JSON-RPC `id`; changes with every attempt. */
  readonly requestId: string
  readonly delegationId: string
  readonly text: string
  readonly metadata: SendMetadata
}

/**
 * One `tasks/get` call.
 *
 * @since 0.1.0
 * @category models
 */
export interface GetTask {
  readonly endpoint: PeerEndpoint
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
  /** One `message/send` POST. */
  readonly send: (request: SendMessage) => Effect.Effect<SendReply, A2AError>
  /** One `tasks/get` POST, to follow a task that is still submitted or working. */
  readonly getTask: (request: GetTask) => Effect.Effect<TaskReply, A2AError>
}>() {}

/**
 * True for the failures the delegation program retries.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTransportError = (error: unknown): error is A2ATransportError =>
  error instanceof A2ATransportError
