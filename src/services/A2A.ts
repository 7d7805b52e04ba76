/**
 * A2A v0.3 JSON-RPC wire shapes, and how an answer becomes text.
 *
 * Decoding is lenient where peers are known to differ (a legacy `type` instead of
 * `kind` on parts, missing optional fields) and strict where it matters (the
 * envelope, the task state).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * One message part; only text parts carry an answer we read.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Part = Schema.Struct({
  kind: Schema.optional(Schema.String),
  /** Pre-0.3 peers (and the platform's own sender) use `type`. */
  type: Schema.optional(Schema.String),
  text: Schema.optional(Schema.Unknown)
})

/**
 * @since 0.1.0
 * @category schemas
 */
export type Part = typeof Part.Type

const Parts = Schema.optionalWith(Schema.Array(Part), { default: () => [] })

/**
 * An A2A `Message` (as a result, or inside a task status).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Message = Schema.Struct({
  kind: Schema.optional(Schema.String),
  role: Schema.optional(Schema.String),
  messageId: Schema.optional(Schema.String),
  parts: Parts,
  /** Not part of a v0.3 Message, but the original module read it; harmless to accept. */
  artifacts: Schema.optionalWith(Schema.Array(Schema.Struct({ parts: Parts })), { default: () => [] })
})

/**
 * @since 0.1.0
 * @category schemas
 */
export type Message = typeof Message.Type

/**
 * A2A v0.3 task states.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TaskState = Schema.Literal(
  "submitted",
  "working",
  "input-required",
  "auth-required",
  "completed",
  "canceled",
  "failed",
  "rejected",
  "unknown"
)

/**
 * @since 0.1.0
 * @category schemas
 */
export type TaskState = typeof TaskState.Type

/**
 * An A2A `Task`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Task = Schema.Struct({
  kind: Schema.Literal("task"),
  id: Schema.String,
  contextId: Schema.optional(Schema.String),
  status: Schema.Struct({
    state: TaskState,
    message: Schema.optional(Message),
    timestamp: Schema.optional(Schema.String)
  }),
  artifacts: Schema.optionalWith(Schema.Array(Schema.Struct({ parts: Parts })), { default: () => [] }),
  /** Tolerated for symmetry with Message; v0.3 tasks carry text in artifacts. */
  parts: Parts
})

/**
 * @since 0.1.0
 * @category schemas
 */
export type Task = typeof Task.Type

/**
 * The JSON-RPC 2.0 response envelope, before the result is classified.
 *
 * @since 0.1.0
 * @category schemas
 */
export const JsonRpcResponse = Schema.Struct({
  jsonrpc: Schema.optional(Schema.Literal("2.0")),
  id: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Number))),
  result: Schema.optional(Schema.Unknown),
  error: Schema.optional(Schema.Struct({
    code: Schema.Number,
    message: Schema.optionalWith(Schema.String, { default: () => "" }),
    data: Schema.optional(Schema.Unknown)
  }))
})

/**
 * @since 0.1.0
 * @category schemas
 */
export type JsonRpcResponse = typeof JsonRpcResponse.Type

/**
 * What the delegation puts into `params.metadata` of `message/send`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SendMetadata {
  readonly parent_task_id: string
  readonly source_workspace_id: string
  readonly traceparent: string | null
}

/**
 * Builds the JSON-RPC 2.0 `message/send` body (A2A v0.3, lower-case role).
 *
 * @since 0.1.0
 * @category constructors
 */
export const messageSendBody = (options: {
  readonly requestId: string
  readonly messageId: string
  readonly text: string
  readonly delegationId: string
  readonly metadata: SendMetadata
}) => ({
  jsonrpc: "2.0" as const,
  id: options.requestId,
  method: "message/send" as const,
  params: {
    message: {
      kind: "message" as const,
      role: "user" as const,
      messageId: options.messageId,
      parts: [{ kind: "text" as const, text: options.text }],
      metadata: { delegation_id: options.delegationId }
    },
    metadata: options.metadata
  }
})

/**
 * Builds the JSON-RPC 2.0 `tasks/get` body.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tasksGetBody = (requestId: string, taskId: string) => ({
  jsonrpc: "2.0" as const,
  id: requestId,
  method: "tasks/get" as const,
  params: { id: taskId }
})

const isTextPart = (part: Part): part is Part & { readonly text: string } =>
  (part.kind === "text" || (part.kind === undefined && part.type === "text")) && typeof part.text === "string"

const textOf = (parts: ReadonlyArray<Part>, into: Array<string>): void => {
  for (const part of parts) {
    if (isTextPart(part)) into.push(part.text)
  }
}

/**
 * The text of an answer: artifact texts, then part texts, then (for a task)
 * the status message; `undefined` when there is none.
 *
 * @since 0.1.0
 * @category utils
 */
export const answerText = (answer: {
  readonly artifacts: ReadonlyArray<{ readonly parts: ReadonlyArray<Part> }>
  readonly parts: ReadonlyArray<Part>
  readonly status?: { readonly message?: Message | undefined } | undefined
}): string | undefined => {
  const texts: Array<string> = []
  for (const artifact of answer.artifacts) textOf(artifact.parts, texts)
  textOf(answer.parts, texts)
  if (texts.length === 0 && answer.status?.message !== undefined) {
    textOf(answer.status.message.parts, texts)
  }
  return texts.length === 0 ? undefined : texts.join("\n")
}

/**
 * Terminal task states, after which `tasks/get` polling stops.
 *
 * @since 0.1.0
 * @category utils
 */
export const isTerminalState = (state: TaskState): boolean =>
  state === "completed" || state === "failed" || state === "rejected" || state === "canceled"
