/**
 * A2A JSON-RPC wire shapes (1.0 and v0.3), and how an answer becomes text.
 *
 * Both versions decode into the same models (`Message`, `Task`, with v0.3 names for
 * roles and states), so everything after the transport reads the same whichever
 * version a peer spoke. Decoding is lenient where peers are known to differ (a legacy
 * `type` instead of `kind` on parts, missing optional fields) and strict where it
 * matters (the envelope, the task state).
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

/** A task's status, in a `Task` and in a status update. */
const TaskStatus = Schema.Struct({
  state: TaskState,
  message: Schema.optional(Message),
  timestamp: Schema.optional(Schema.String)
})

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
  status: TaskStatus,
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

// --- A2A 1.0 --------------------------------------------------------------------------------------

/**
 * The A2A protocol versions this library speaks.
 *
 * @since 0.2.0
 * @category schemas
 */
export const ProtocolVersion = Schema.Literal("1.0", "0.3")

/**
 * @since 0.2.0
 * @category schemas
 */
export type ProtocolVersion = typeof ProtocolVersion.Type

/**
 * Which version to speak: `auto` chooses per peer (agent card, then 1.0 with one
 * fallback; 0.3 through the platform's proxy); `1.0` or `0.3` pins it for every peer.
 *
 * @since 0.2.0
 * @category schemas
 */
export const ProtocolSetting = Schema.Literal("auto", "1.0", "0.3")

/**
 * @since 0.2.0
 * @category schemas
 */
export type ProtocolSetting = typeof ProtocolSetting.Type

/**
 * The header a 1.0 request carries; its value must be exactly `1.0` (a 1.0 server
 * takes a missing header for 0.3).
 *
 * @since 0.2.0
 * @category constants
 */
export const VERSION_HEADER = "a2a-version"

/**
 * Where a peer publishes its agent card, under the origin of its URL.
 *
 * @since 0.2.0
 * @category constants
 */
export const AGENT_CARD_PATH = "/.well-known/agent-card.json"

/**
 * A 1.0 part: no `kind`; the content field says what it is (`text`, `data`, `url`, `raw`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const V1Part = Schema.Struct({
  text: Schema.optional(Schema.Unknown),
  data: Schema.optional(Schema.Unknown),
  url: Schema.optional(Schema.Unknown),
  raw: Schema.optional(Schema.Unknown),
  mediaType: Schema.optional(Schema.String)
})

/**
 * @since 0.2.0
 * @category schemas
 */
export type V1Part = typeof V1Part.Type

const V1Parts = Schema.optionalWith(Schema.Array(V1Part), { default: () => [] })

/**
 * A 1.0 `Message` (`role` is `ROLE_USER` / `ROLE_AGENT`, or its proto3 number).
 *
 * @since 0.2.0
 * @category schemas
 */
export const V1Message = Schema.Struct({
  messageId: Schema.optional(Schema.String),
  role: Schema.optional(Schema.Union(Schema.String, Schema.Number)),
  parts: V1Parts
})

/**
 * @since 0.2.0
 * @category schemas
 */
export type V1Message = typeof V1Message.Type

const V1_TASK_STATES = [
  "TASK_STATE_UNSPECIFIED",
  "TASK_STATE_SUBMITTED",
  "TASK_STATE_WORKING",
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_INPUT_REQUIRED",
  "TASK_STATE_REJECTED",
  "TASK_STATE_AUTH_REQUIRED"
] as const

/**
 * 1.0 task states, by name or by their proto3 number (JSON parsers must accept both).
 *
 * @since 0.2.0
 * @category schemas
 */
export const V1TaskState = Schema.Union(
  Schema.Literal(...V1_TASK_STATES),
  Schema.Int.pipe(Schema.between(0, V1_TASK_STATES.length - 1))
)

/**
 * @since 0.2.0
 * @category schemas
 */
export type V1TaskState = typeof V1TaskState.Type

/** A 1.0 task's status, in a `Task` and in a status update; proto3 JSON may leave out its state. */
const V1TaskStatus = Schema.Struct({
  state: Schema.optional(V1TaskState),
  message: Schema.optional(V1Message),
  timestamp: Schema.optional(Schema.String)
})

/**
 * A 1.0 `Task`. Proto3 JSON leaves out empty fields, so a state at its default
 * (`TASK_STATE_UNSPECIFIED`) may be missing, and so may `artifacts`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const V1Task = Schema.Struct({
  id: Schema.String,
  contextId: Schema.optional(Schema.String),
  status: Schema.optional(V1TaskStatus),
  artifacts: Schema.optionalWith(Schema.Array(Schema.Struct({ parts: V1Parts })), { default: () => [] })
})

/**
 * @since 0.2.0
 * @category schemas
 */
export type V1Task = typeof V1Task.Type

const STATE_OF: Readonly<Record<(typeof V1_TASK_STATES)[number], TaskState>> = {
  TASK_STATE_UNSPECIFIED: "unknown",
  TASK_STATE_SUBMITTED: "submitted",
  TASK_STATE_WORKING: "working",
  TASK_STATE_COMPLETED: "completed",
  TASK_STATE_FAILED: "failed",
  TASK_STATE_CANCELED: "canceled",
  TASK_STATE_INPUT_REQUIRED: "input-required",
  TASK_STATE_REJECTED: "rejected",
  TASK_STATE_AUTH_REQUIRED: "auth-required"
}

/**
 * The library's task state for a 1.0 one (`TASK_STATE_WORKING` is `working`).
 *
 * @since 0.2.0
 * @category utils
 */
export const taskStateFromV1 = (state: V1TaskState | undefined): TaskState =>
  STATE_OF[typeof state === "number" ? V1_TASK_STATES[state]! : state ?? "TASK_STATE_UNSPECIFIED"]

const roleFromV1 = (role: string | number | undefined): string | undefined =>
  role === "ROLE_AGENT" || role === 2 ? "agent" : role === "ROLE_USER" || role === 1 ? "user" : undefined

// A 1.0 part in the library's (v0.3) terms: a text part is `{kind: "text", text}`.
const partFromV1 = (part: V1Part): Part =>
  typeof part.text === "string"
    ? { kind: "text", text: part.text }
    : { kind: part.data !== undefined ? "data" : part.url !== undefined || part.raw !== undefined ? "file" : "unknown" }

const partsFromV1 = (parts: ReadonlyArray<V1Part>): ReadonlyArray<Part> => parts.map(partFromV1)

/**
 * A 1.0 message in the library's model (`ROLE_AGENT` is `agent`, parts get their `kind`).
 *
 * @since 0.2.0
 * @category utils
 */
export const messageFromV1 = (message: V1Message): Message => {
  const role = roleFromV1(message.role)
  return {
    ...(role === undefined ? {} : { role }),
    ...(message.messageId === undefined ? {} : { messageId: message.messageId }),
    parts: partsFromV1(message.parts),
    artifacts: []
  }
}

/**
 * A 1.0 task in the library's model, with its state mapped (`TASK_STATE_COMPLETED` is `completed`).
 *
 * @since 0.2.0
 * @category utils
 */
export const taskFromV1 = (task: V1Task): Task => {
  const status = task.status
  return {
    kind: "task",
    id: task.id,
    ...(task.contextId === undefined ? {} : { contextId: task.contextId }),
    status: {
      state: taskStateFromV1(status?.state),
      ...(status?.message === undefined ? {} : { message: messageFromV1(status.message) }),
      ...(status?.timestamp === undefined ? {} : { timestamp: status.timestamp })
    },
    artifacts: task.artifacts.map((artifact) => ({ parts: partsFromV1(artifact.parts) })),
    parts: []
  }
}

/**
 * Builds the JSON-RPC 2.0 `SendMessage` body (A2A 1.0: `ROLE_USER`, parts without `kind`).
 * The `messageId` and both metadata objects are those of `message/send`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const v1SendMessageBody = (options: {
  readonly requestId: string
  readonly messageId: string
  readonly text: string
  readonly delegationId: string
  readonly metadata: SendMetadata
}) => ({
  jsonrpc: "2.0" as const,
  id: options.requestId,
  method: "SendMessage" as const,
  params: {
    message: {
      messageId: options.messageId,
      role: "ROLE_USER" as const,
      parts: [{ text: options.text }],
      metadata: { delegation_id: options.delegationId }
    },
    metadata: options.metadata
  }
})

/**
 * Builds the JSON-RPC 2.0 `GetTask` body (1.0); `historyLength: 0` leaves the history out.
 *
 * @since 0.2.0
 * @category constructors
 */
export const v1GetTaskBody = (requestId: string, taskId: string) => ({
  jsonrpc: "2.0" as const,
  id: requestId,
  method: "GetTask" as const,
  params: { id: taskId, historyLength: 0 }
})

/**
 * Builds the JSON-RPC 2.0 `CancelTask` body (1.0).
 *
 * @since 0.2.0
 * @category constructors
 */
export const v1CancelTaskBody = (requestId: string, taskId: string) => ({
  jsonrpc: "2.0" as const,
  id: requestId,
  method: "CancelTask" as const,
  params: { id: taskId }
})

/**
 * Builds the JSON-RPC 2.0 `tasks/cancel` body (v0.3).
 *
 * @since 0.2.0
 * @category constructors
 */
export const tasksCancelBody = (requestId: string, taskId: string) => ({
  jsonrpc: "2.0" as const,
  id: requestId,
  method: "tasks/cancel" as const,
  params: { id: taskId }
})

/**
 * The `reason` of a 1.0 error: its `data` is a list of `google.rpc.ErrorInfo`
 * (`{"@type": ".../google.rpc.ErrorInfo", "reason": "TASK_NOT_FOUND", ...}`).
 *
 * @since 0.2.0
 * @category utils
 */
export const errorInfoReason = (data: unknown): string | undefined => {
  if (!Array.isArray(data)) return undefined
  for (const detail of data) {
    const reason = fieldOf(detail, "reason")
    if (typeof reason === "string" && reason !== "") return reason
  }
  return undefined
}

/**
 * What an agent card says about JSON-RPC: the version, and for 1.0 the URL of its
 * 1.0 JSON-RPC interface.
 *
 * @since 0.2.0
 * @category models
 */
export interface CardProtocol {
  readonly version: ProtocolVersion
  /** The card's 1.0 JSON-RPC URL; absent for 0.3, which is spoken at the discovered URL. */
  readonly url?: string | undefined
  /** The card says `capabilities.streaming: true` (absent otherwise). */
  readonly streaming?: true | undefined
}

/**
 * Reads the version from an agent card fetched with `A2A-Version: 1.0`. A card with
 * `supportedInterfaces` is 1.0 (even when it also carries 0.3 fields): its JSON-RPC
 * interface with `protocolVersion` "1.0", else a JSON-RPC one in [0.3, 1.0). A card
 * with a top-level `url`, a `protocolVersion` in [0.3, 1.0), `preferredTransport` or
 * `additionalInterfaces` is 0.3. Anything else does not say (`undefined`). `streaming` is set when
 * the card's `capabilities.streaming` is `true`.
 *
 * @since 0.2.0
 * @category utils
 */
export const cardProtocol = (card: unknown, cardUrl: string): CardProtocol | undefined => {
  const found = cardVersion(card, cardUrl)
  if (found === undefined) return undefined
  return fieldOf(fieldOf(card, "capabilities"), "streaming") === true ? { ...found, streaming: true } : found
}

const cardVersion = (card: unknown, cardUrl: string): CardProtocol | undefined => {
  if (typeof card !== "object" || card === null || Array.isArray(card)) return undefined
  const interfaces = fieldOf(card, "supportedInterfaces")
  if (Array.isArray(interfaces) && interfaces.length > 0) {
    const jsonRpc = interfaces.filter((entry) => String(fieldOf(entry, "protocolBinding")).toUpperCase() === "JSONRPC")
    const v1 = jsonRpc.find((entry) => fieldOf(entry, "protocolVersion") === "1.0")
    if (v1 !== undefined) {
      const url = absoluteUrl(fieldOf(v1, "url"), cardUrl)
      return url === undefined ? { version: "1.0" } : { version: "1.0", url }
    }
    return jsonRpc.some((entry) => isLegacyVersion(fieldOf(entry, "protocolVersion"))) ? { version: "0.3" } : undefined
  }
  const legacy = typeof fieldOf(card, "url") === "string" || isLegacyVersion(fieldOf(card, "protocolVersion")) ||
    fieldOf(card, "preferredTransport") !== undefined || fieldOf(card, "additionalInterfaces") !== undefined
  return legacy ? { version: "0.3" } : undefined
}

const fieldOf = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Readonly<Record<string, unknown>>)[name]
    : undefined

/** A version in [0.3, 1.0), as v0.3 cards write it ("0.3", "0.3.0"). */
const isLegacyVersion = (version: unknown): boolean => {
  if (typeof version !== "string") return false
  const match = /^0\.(\d+)(?:\.\d+)?$/.exec(version.trim())
  return match !== null && Number(match[1]) >= 3
}

// An interface URL may be relative to the card; only absolute http(s) URLs are followed.
const absoluteUrl = (url: unknown, base: string): string | undefined => {
  if (typeof url !== "string" || url === "" || !URL.canParse(url, base)) return undefined
  const resolved = new URL(url, base)
  return resolved.protocol === "http:" || resolved.protocol === "https:" ? resolved.href : undefined
}

// --- streaming (SSE) ------------------------------------------------------------------------------

/**
 * An artifact as a v0.3 `artifact-update` carries it (`artifactId` and its parts).
 *
 * @since 0.4.0
 * @category schemas
 */
export const StreamArtifact = Schema.Struct({
  artifactId: Schema.optionalWith(Schema.String, { default: () => "" }),
  parts: Parts
})

/**
 * A v0.3 `TaskStatusUpdateEvent` (`kind: "status-update"`); `final` marks the last event of the stream.
 *
 * @since 0.4.0
 * @category schemas
 */
export const TaskStatusUpdateEvent = Schema.Struct({
  kind: Schema.Literal("status-update"),
  taskId: Schema.String,
  contextId: Schema.optional(Schema.String),
  status: TaskStatus,
  final: Schema.optionalWith(Schema.Boolean, { default: () => false })
})

/**
 * @since 0.4.0
 * @category schemas
 */
export type TaskStatusUpdateEvent = typeof TaskStatusUpdateEvent.Type

/**
 * A v0.3 `TaskArtifactUpdateEvent` (`kind: "artifact-update"`): a chunk of an artifact.
 *
 * @since 0.4.0
 * @category schemas
 */
export const TaskArtifactUpdateEvent = Schema.Struct({
  kind: Schema.Literal("artifact-update"),
  taskId: Schema.String,
  contextId: Schema.optional(Schema.String),
  artifact: StreamArtifact,
  append: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  lastChunk: Schema.optionalWith(Schema.Boolean, { default: () => false })
})

/**
 * @since 0.4.0
 * @category schemas
 */
export type TaskArtifactUpdateEvent = typeof TaskArtifactUpdateEvent.Type

/**
 * A 1.0 `TaskStatusUpdateEvent` (the `statusUpdate` of a `StreamResponse`). It has no `final`: the
 * server closes the stream after a terminal or interrupted state.
 *
 * @since 0.4.0
 * @category schemas
 */
export const V1TaskStatusUpdateEvent = Schema.Struct({
  taskId: Schema.String,
  contextId: Schema.optional(Schema.String),
  status: Schema.optional(V1TaskStatus)
})

/**
 * @since 0.4.0
 * @category schemas
 */
export type V1TaskStatusUpdateEvent = typeof V1TaskStatusUpdateEvent.Type

/**
 * A 1.0 `TaskArtifactUpdateEvent` (the `artifactUpdate` of a `StreamResponse`); proto3 JSON leaves
 * out `append` and `lastChunk` when they are false.
 *
 * @since 0.4.0
 * @category schemas
 */
export const V1TaskArtifactUpdateEvent = Schema.Struct({
  taskId: Schema.String,
  contextId: Schema.optional(Schema.String),
  artifact: Schema.Struct({
    artifactId: Schema.optionalWith(Schema.String, { default: () => "" }),
    parts: V1Parts
  }),
  append: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  lastChunk: Schema.optionalWith(Schema.Boolean, { default: () => false })
})

/**
 * @since 0.4.0
 * @category schemas
 */
export type V1TaskArtifactUpdateEvent = typeof V1TaskArtifactUpdateEvent.Type

/**
 * The joined text parts of a message or an artifact chunk (`""` when it has none).
 *
 * @since 0.4.0
 * @category utils
 */
export const partsText = (parts: ReadonlyArray<Part>): string => {
  const texts: Array<string> = []
  textOf(parts, texts)
  return texts.join("")
}

/**
 * 1.0 parts in the library's (v0.3) terms.
 *
 * @since 0.4.0
 * @category utils
 */
export const partsFromV1Parts = (parts: ReadonlyArray<V1Part>): ReadonlyArray<Part> => partsFromV1(parts)

/**
 * States after which a peer closes a stream: the terminal ones and the interrupted ones
 * (`input-required`, `auth-required`).
 *
 * @since 0.4.0
 * @category utils
 */
export const endsStream = (state: TaskState): boolean =>
  isTerminalState(state) || state === "input-required" || state === "auth-required"

/**
 * Builds the JSON-RPC 2.0 `message/stream` body (v0.3): `message/send`'s params.
 *
 * @since 0.4.0
 * @category constructors
 */
export const messageStreamBody = (options: Parameters<typeof messageSendBody>[0]) => ({
  ...messageSendBody(options),
  method: "message/stream" as const
})

/**
 * Builds the JSON-RPC 2.0 `tasks/resubscribe` body (v0.3).
 *
 * @since 0.4.0
 * @category constructors
 */
export const tasksResubscribeBody = (requestId: string, taskId: string) => ({
  jsonrpc: "2.0" as const,
  id: requestId,
  method: "tasks/resubscribe" as const,
  params: { id: taskId }
})

/**
 * Builds the JSON-RPC 2.0 `SendStreamingMessage` body (1.0): `SendMessage`'s params.
 *
 * @since 0.4.0
 * @category constructors
 */
export const v1SendStreamingMessageBody = (options: Parameters<typeof v1SendMessageBody>[0]) => ({
  ...v1SendMessageBody(options),
  method: "SendStreamingMessage" as const
})

/**
 * Builds the JSON-RPC 2.0 `SubscribeToTask` body (1.0).
 *
 * @since 0.4.0
 * @category constructors
 */
export const v1SubscribeToTaskBody = (requestId: string, taskId: string) => ({
  jsonrpc: "2.0" as const,
  id: requestId,
  method: "SubscribeToTask" as const,
  params: { id: taskId }
})
