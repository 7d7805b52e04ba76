/**
 * The live A2A transport: JSON-RPC 1.0 or v0.3 over the host's `HttpClient`, with the
 * per-peer version choice (`A2A_PROTOCOL`) read from agent cards.
 *
 * @since 0.1.0
 */
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Duration, Effect, Either, Layer, Option, Ref, Schema, Stream } from "effect"
import { DEFAULT_CAPACITY, DEFAULT_TIME_TO_LIVE, makeProtocolChoice } from "../services/ProtocolChoice.js"
import type { CardProtocol, JsonRpcResponse as JsonRpcResponseType, ProtocolSetting, ProtocolVersion } from "../services/A2A.js"
import {
  AGENT_CARD_PATH,
  cardProtocol,
  endsStream,
  errorInfoReason,
  JsonRpcResponse,
  Message,
  messageFromV1,
  messageSendBody,
  messageStreamBody,
  partsFromV1Parts,
  partsText,
  Task,
  TaskArtifactUpdateEvent,
  taskFromV1,
  tasksCancelBody,
  tasksGetBody,
  TaskStatusUpdateEvent,
  taskStateFromV1,
  tasksResubscribeBody,
  V1Message,
  V1Task,
  V1TaskArtifactUpdateEvent,
  V1TaskStatusUpdateEvent,
  v1CancelTaskBody,
  v1GetTaskBody,
  v1SendMessageBody,
  v1SendStreamingMessageBody,
  v1SubscribeToTaskBody,
  VERSION_HEADER
} from "../services/A2A.js"
import type { A2AError, PeerProtocol, SendMessage, SendReply, StreamEvent } from "../services/A2ATransport.js"
import type { PeerEndpoint } from "../services/Discovery.js"

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
import { formatStack } from "../internal/stack.js"
import { excerpt } from "../internal/text.js"
import { NativeRequestBounds, RequestBounds } from "../services/RequestBounds.js"
import {
  errorText,
  field,
  fromHttpClientError,
  parseJson,
  DEFAULT_MAX_RESPONSE_BYTES,
  type OnBounds,
  retryAfterMillis,
  textWithin
} from "./internal/http.js"
import { boundedClient } from "./internal/nativeBounds.js"
import { boundedBytes, sseEvents } from "./internal/sse.js"
import { PlatformHttpClient } from "./PlatformHttpClient.js"

/**
 * Options of the live transport.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Sent as `X-Workspace-ID` on every A2A POST. */
  readonly workspaceId: string
  /** Upper bound of one request, from its start to the end of its body (`DELEGATION_TIMEOUT`). */
  readonly timeout: Duration.DurationInput
  /** Bytes of a response body read at most (`DELEGATION_MAX_RESPONSE_BYTES`, default 10 MiB); past it the request fails. */
  readonly maxResponseBytes?: number | undefined
  /**
   * `A2A_PROTOCOL`: `auto` (default) chooses per peer (0.3 for a `viaPlatform` endpoint: the proxy
   * forwards no `A2A-Version`); `1.0` or `0.3` pins the version for every peer.
   */
  readonly protocol?: ProtocolSetting | undefined
  /**
   * The idle bound of a stream (`sendStream`, `subscribe`): a stream that brings no event for this long
   * fails with `A2ATransportError` (`Timeout`), and its connection is closed. Default 60 seconds. A
   * stream has no overall deadline; `timeout` bounds only the wait for its response headers, and
   * `maxResponseBytes` all of its events together.
   */
  readonly idle?: Duration.DurationInput | undefined
  /** How many peers' versions `auto` keeps (1,000) and for how long (1 hour). */
  readonly protocolCache?: {
    readonly capacity?: number | undefined
    readonly timeToLive?: Duration.DurationInput | undefined
  } | undefined
}

const decodeEnvelope = Schema.decodeUnknownEither(JsonRpcResponse)
const decodeTask = Schema.decodeUnknownEither(Task)
const decodeMessage = Schema.decodeUnknownEither(Message)
const decodeV1Task = Schema.decodeUnknownEither(V1Task)
const decodeV1Message = Schema.decodeUnknownEither(V1Message)
const decodeQueued = Schema.decodeUnknownEither(Schema.Struct({
  queued: Schema.Literal(true),
  queue_id: Schema.optional(Schema.String),
  queue_depth: Schema.optional(Schema.Int),
  message: Schema.optional(Schema.String)
}))

const RETRYABLE_STATUS = new Set([408, 429, 502, 503, 504])

/**
 * What a request's `result` should be: a send's (1.0 wraps it in `{message}` or
 * `{task}`), or a bare Task (`GetTask`/`tasks/get`, `CancelTask`/`tasks/cancel`).
 *
 * @since 0.2.0
 * @category models
 */
export type Expected = "send" | "task"

/**
 * Turns one HTTP response into a reply or a typed error. A 202 is read before any
 * JSON-RPC decoding because `{"queued": true}` is the proxy's contract, not A2A.
 * Both versions' results become the library's `Message`/`Task`. `via` says whether the
 * request went to the platform's A2A proxy, whose 503 busy to a send is not retryable.
 *
 * @since 0.1.0
 * @category utils
 */
export const classifyResponse = (
  url: string,
  requestId: string,
  response: HttpClientResponse.HttpClientResponse,
  text: string,
  version: ProtocolVersion = "0.3",
  expect: Expected = "send",
  via: "peer" | "proxy" = "peer"
): Effect.Effect<SendReply, A2AError> => {
  const status = response.status
  if (status === 202) return classifyAccepted(url, text)
  // A poll or a cancel answered busy is only asked again: it starts nothing at the peer.
  if (status !== 200) return classifyStatus(url, status, response.headers, text, via === "proxy" && expect === "send")

  const json = parseJson(text)
  if (Either.isLeft(json)) return responseError(url, status, "InvalidJson", "")
  const envelope = decodeEnvelope(json.right)
  if (Either.isLeft(envelope) || typeof json.right !== "object" || json.right === null) {
    return responseError(url, status, "NotJsonRpc", "expected an object with jsonrpc \"2.0\" and a result or an error")
  }
  const reply = envelope.right
  if (reply.id !== undefined && reply.id !== null && reply.id !== requestId) {
    return responseError(url, status, "IdMismatch", `sent ${requestId}, got ${String(reply.id)}`)
  }
  if (reply.error !== undefined) return Effect.fail(jsonRpcError(reply.error, version))
  if (!("result" in json.right)) return responseError(url, status, "EmptyReply", "")
  const result = reply.result
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    return responseError(url, status, "InvalidResult", `result is ${result === null ? "null" : typeof result}`)
  }
  const answer = version === "1.0" ? v1Result(result, expect) : v03Result(result, expect)
  return Either.isRight(answer) ? Effect.succeed(answer.right) : responseError(url, status, "InvalidResult", answer.left)
}

const jsonRpcError = (error: NonNullable<JsonRpcResponseType["error"]>, version: ProtocolVersion): JsonRpcError => {
  const reason = errorInfoReason(error.data)
  return formatStack(
    new JsonRpcError({
      code: error.code,
      rpcMessage: excerpt(error.message, RPC_MESSAGE_EXCERPT),
      ...(keptData(error.data) ? { data: error.data } : {}),
      ...(reason === undefined ? {} : { reason }),
      protocolVersion: version
    })
  )
}

/** Characters of a JSON-RPC error message kept. */
const RPC_MESSAGE_EXCERPT = 1000
/** JSON characters of a JSON-RPC error's `data` kept; larger data is dropped (the code and message stay). */
const RPC_DATA_MAX = 4096

const keptData = (data: unknown): boolean => {
  if (data === undefined) return false
  const json = Either.try(() => JSON.stringify(data))
  return Either.isRight(json) && json.right !== undefined && json.right.length <= RPC_DATA_MAX
}

// The error builders below are given only what the error keeps (an excerpt of the body, never the
// body), and format the error's stack at once (see formatStack).
const responseError = (url: string, status: number, reason: A2AResponseError["reason"], detail: string) =>
  Effect.fail(formatStack(new A2AResponseError({ url, reason, status, detail })))

const classifyAccepted = (url: string, text: string): Effect.Effect<SendReply, A2AError> => {
  const queued = Either.flatMap(parseJson(text), (json) => Either.mapLeft(decodeQueued(json), String))
  return Either.isRight(queued)
    ? Effect.succeed(
      new QueuedReply({
        ...(queued.right.queue_id === undefined ? {} : { queueId: queued.right.queue_id }),
        ...(queued.right.queue_depth === undefined ? {} : { queueDepth: queued.right.queue_depth }),
        ...(queued.right.message === undefined ? {} : { message: queued.right.message })
      }, { disableValidation: true })
    )
    : responseError(url, 202, "UnexpectedAccepted", errorText(text))
}

const classifyStatus = (
  url: string,
  status: number,
  headers: Readonly<Record<string, string>>,
  text: string,
  sentThroughProxy: boolean
): Effect.Effect<never, A2AError> => {
  const json = Either.getOrUndefined(parseJson(text))
  const detail = errorText(text)
  if (status === 502 && field(json, "delivery_confirmed") === true) {
    return responseError(url, status, "DeliveryConfirmed", detail)
  }
  // The platform's proxy infers "busy" from a timeout while the peer is alive, so the request may have
  // reached it: sending it again could run the task twice (contract 6.2 items 10 and 31). Its 503
  // `restarting` or `waking` was not delivered, and a peer's own 503 turned the request away at the
  // door: both are retried below.
  if (sentThroughProxy && status === 503 && field(json, "busy") === true) {
    return responseError(url, status, "Busy", detail)
  }
  if (!RETRYABLE_STATUS.has(status)) return responseError(url, status, "Status", detail)
  return retryableStatus(url, status, detail, retryAfterMillis(headers, { retry_after: field(json, "retry_after") }))
}

const retryableStatus = (
  url: string,
  status: number,
  detail: string,
  retryAfter: Effect.Effect<number | undefined>
): Effect.Effect<never, A2ATransportError> =>
  Effect.flatMap(retryAfter, (millis) =>
    Effect.fail(formatStack(
      new A2ATransportError({
        url,
        reason: "Status",
        status,
        ...(millis === undefined ? {} : { retryAfterMillis: millis }),
        detail
      })
    )))

const taskReply = (task: Task, raw: unknown) => new TaskReply({ task, raw }, { disableValidation: true })
const messageReply = (message: Message, raw: unknown) => new MessageReply({ message, raw }, { disableValidation: true })

// A v0.3 result is a Task (`kind: "task"`) or a Message.
const v03Result = (result: object, expect: Expected): Either.Either<MessageReply | TaskReply, string> => {
  if (field(result, "kind") === "task") {
    return Either.match(decodeTask(result), {
      onLeft: () => Either.left("malformed Task"),
      onRight: (task) => Either.right(taskReply(task, result))
    })
  }
  if (expect === "task") return Either.left("expected a Task")
  return Either.match(decodeMessage(result), {
    onLeft: () => Either.left("malformed Message"),
    onRight: (message) => Either.right(messageReply(message, result))
  })
}

// A 1.0 send result is `{"message": ...}` or `{"task": ...}`; GetTask and CancelTask return the bare Task.
const v1Result = (result: object, expect: Expected): Either.Either<MessageReply | TaskReply, string> => {
  const wrapped = expect === "send" ? field(result, "task") : result
  if (wrapped !== undefined) {
    return Either.match(decodeV1Task(wrapped), {
      onLeft: () => Either.left("malformed Task"),
      onRight: (task) => Either.right(taskReply(taskFromV1(task), wrapped))
    })
  }
  const message = field(result, "message")
  if (message === undefined) return Either.left("expected {\"message\": ...} or {\"task\": ...}")
  return Either.match(decodeV1Message(message), {
    onLeft: () => Either.left("malformed Message"),
    onRight: (decoded) => Either.right(messageReply(messageFromV1(decoded), message))
  })
}

// --- streaming ------------------------------------------------------------------------------------

/**
 * The idle bound of a stream by default: 60 seconds without an event fails it.
 *
 * @since 0.4.0
 * @category constants
 */
export const DEFAULT_STREAM_IDLE: Duration.Duration = Duration.seconds(60)

const decodeStatusUpdate = Schema.decodeUnknownEither(TaskStatusUpdateEvent)
const decodeArtifactUpdate = Schema.decodeUnknownEither(TaskArtifactUpdateEvent)
const decodeV1StatusUpdate = Schema.decodeUnknownEither(V1TaskStatusUpdateEvent)
const decodeV1ArtifactUpdate = Schema.decodeUnknownEither(V1TaskArtifactUpdateEvent)

/**
 * True for the event after which a stream is over: a `Message`, or a task or status update in a
 * terminal or interrupted state (or, in v0.3, one marked `final`).
 *
 * @since 0.4.0
 * @category utils
 */
export const isFinalEvent = (event: StreamEvent): boolean => {
  switch (event._tag) {
    case "MessageReply":
      return true
    case "TaskReply":
      return endsStream(event.task.status.state)
    case "TaskStatusUpdate":
      return event.final
    case "TaskArtifactUpdate":
      return false
  }
}

/**
 * Turns the `data` of one event of a stream (a JSON-RPC response with the request's id) into the
 * event or a typed error: its `error` is a `JsonRpcError` (an `event: error` of the SDK servers has
 * the same data); its `result` a Message, Task, status update or artifact chunk, in 1.0
 * (`{"statusUpdate": ...}`, ...) or v0.3 (`{"kind": "status-update", ...}`, ...) terms.
 *
 * @since 0.4.0
 * @category utils
 */
export const classifyStreamEvent = (
  url: string,
  requestId: string,
  data: string,
  version: ProtocolVersion
): Effect.Effect<StreamEvent, A2AError> => {
  const json = parseJson(data)
  if (Either.isLeft(json)) return responseError(url, 200, "InvalidJson", "an event's data is not JSON")
  const envelope = decodeEnvelope(json.right)
  if (Either.isLeft(envelope) || typeof json.right !== "object" || json.right === null) {
    return responseError(url, 200, "NotJsonRpc", "an event's data is not a JSON-RPC response")
  }
  const reply = envelope.right
  if (reply.id !== undefined && reply.id !== null && reply.id !== requestId) {
    return responseError(url, 200, "IdMismatch", `sent ${requestId}, got ${String(reply.id)}`)
  }
  if (reply.error !== undefined) return Effect.fail(jsonRpcError(reply.error, version))
  if (!("result" in json.right)) return responseError(url, 200, "EmptyReply", "")
  const result = reply.result
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    return responseError(url, 200, "InvalidResult", `result is ${result === null ? "null" : typeof result}`)
  }
  const event = version === "1.0" ? v1StreamResult(result) : v03StreamResult(result)
  return Either.isRight(event) ? Effect.succeed(event.right) : responseError(url, 200, "InvalidResult", event.left)
}

const statusUpdate = (
  taskId: string,
  state: Task["status"]["state"],
  text: string,
  final: boolean,
  raw: unknown
) =>
  new TaskStatusUpdate({ taskId, state, ...(text === "" ? {} : { message: text }), final, raw }, { disableValidation: true })

const artifactUpdate = (
  taskId: string,
  artifactId: string,
  text: string,
  flags: { readonly append: boolean; readonly lastChunk: boolean },
  raw: unknown
) => new TaskArtifactUpdate({ taskId, artifactId, text, append: flags.append, lastChunk: flags.lastChunk, raw }, { disableValidation: true })

// A v0.3 event is a Task, a Message, or an update, told apart by `kind`.
const v03StreamResult = (result: object): Either.Either<StreamEvent, string> => {
  switch (field(result, "kind")) {
    case "status-update":
      return Either.match(decodeStatusUpdate(result), {
        onLeft: () => Either.left("malformed TaskStatusUpdateEvent"),
        onRight: (event) =>
          Either.right(statusUpdate(
            event.taskId,
            event.status.state,
            partsText(event.status.message?.parts ?? []),
            event.final || endsStream(event.status.state),
            result
          ))
      })
    case "artifact-update":
      return Either.match(decodeArtifactUpdate(result), {
        onLeft: () => Either.left("malformed TaskArtifactUpdateEvent"),
        onRight: (event) =>
          Either.right(artifactUpdate(event.taskId, event.artifact.artifactId, partsText(event.artifact.parts), event, result))
      })
    case "task":
    case "message":
      return v03Result(result, "send")
    default:
      return Either.left("expected a Task, a Message, a status-update or an artifact-update")
  }
}

// A 1.0 event is a `StreamResponse`: one of `task`, `message`, `statusUpdate`, `artifactUpdate`.
const v1StreamResult = (result: object): Either.Either<StreamEvent, string> => {
  const status = field(result, "statusUpdate")
  if (status !== undefined) {
    return Either.match(decodeV1StatusUpdate(status), {
      onLeft: () => Either.left("malformed statusUpdate"),
      onRight: (event) => {
        const state = taskStateFromV1(event.status?.state)
        const message = event.status?.message
        const text = message === undefined ? "" : partsText(partsFromV1Parts(message.parts))
        return Either.right(statusUpdate(event.taskId, state, text, endsStream(state), status))
      }
    })
  }
  const artifact = field(result, "artifactUpdate")
  if (artifact !== undefined) {
    return Either.match(decodeV1ArtifactUpdate(artifact), {
      onLeft: () => Either.left("malformed artifactUpdate"),
      onRight: (event) =>
        Either.right(
          artifactUpdate(event.taskId, event.artifact.artifactId, partsText(partsFromV1Parts(event.artifact.parts)), event, artifact)
        )
    })
  }
  if (field(result, "task") === undefined && field(result, "message") === undefined) {
    return Either.left("expected {\"task\"}, {\"message\"}, {\"statusUpdate\"} or {\"artifactUpdate\"}")
  }
  return v1Result(result, "send")
}

// A streaming answer is SSE; anything else is the JSON answer a server gives before a stream starts.
const isEventStream = (contentType: string | undefined): boolean =>
  contentType !== undefined && contentType.toLowerCase().split(";")[0]!.trim() === "text/event-stream"

// The origin's well-known card path, or nothing for a URL that does not parse.
const cardUrlOf = (url: string): string | undefined =>
  URL.canParse(url) ? `${new URL(url).origin}${AGENT_CARD_PATH}` : undefined

// The SDK's own client reads the card with these; a compatible server answers 1.0 only with the header.
const CARD_HEADERS = { [VERSION_HEADER]: "1.0", accept: "application/json" }

/**
 * Builds the transport from the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const native = Option.isSome(yield* Effect.serviceOption(NativeRequestBounds))
    const timeout = Duration.decode(options.timeout)
    const bounded = { timeout, maxBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES }
    const execute = textWithin(boundedClient(client, native), bounded)
    // The platform's proxy is reached through the layer's platform client, when there is one: its
    // credentials (never sent to a peer), and its pace, since the proxy counts against the rate limit.
    const platform = Option.getOrUndefined(yield* Effect.serviceOption(PlatformHttpClient))
    const proxyPrefix = platform === undefined ? undefined : `${platform.settings.platformUrl}/`
    const platformClient = platform === undefined ? undefined : platform.withPriority("outcome", timeout)
    const throughPlatform = platformClient === undefined ? undefined : textWithin(platformClient, bounded)
    // The path on the platform of a request to its proxy; `undefined` for one that goes to the peer.
    // Whether the proxy answers depends on the endpoint, not on the bearer settings.
    const proxyPath = (endpoint: PeerEndpoint, url: string): string | undefined =>
      endpoint.viaPlatform === true && proxyPrefix !== undefined && url.startsWith(proxyPrefix)
        ? url.slice(proxyPrefix.length - 1)
        : undefined
    // A v0.3 request has no version header (a 1.0 server reads its absence as 0.3).
    const peerHeaders = { "x-workspace-id": options.workspaceId }
    const peerHeadersV1 = { ...peerHeaders, [VERSION_HEADER]: "1.0" }
    const headersFor = (version: ProtocolVersion) => (version === "1.0" ? peerHeadersV1 : peerHeaders)

    // The error mapping is built once: the request's URL is the endpoint's.
    const bounds = (url: string): OnBounds<A2ATransportError | A2AResponseError> => ({
      onTimeout: () =>
        new A2ATransportError({ url, reason: "Timeout", detail: `request timed out after ${Duration.format(timeout)}` }),
      // The same oversized answer would come again: not a transport failure, never re-sent.
      onTooLarge: (maxBytes: number, status: number) =>
        new A2AResponseError({ url, reason: "TooLarge", status, detail: `more than ${maxBytes} bytes` })
    })
    const recover = {
      RequestError: (error: HttpClientError.RequestError) =>
        error.reason === "Transport"
          ? Effect.fail(new A2ATransportError({ url: error.request.url, ...fromHttpClientError(error) }))
          : Effect.fail(
            new A2ARequestError({
              url: error.request.url,
              reason: error.reason,
              detail: error.description ?? (error.cause instanceof Error ? error.cause.message : ""),
              cause: error
            })
          ),
      // Reading the body failed after the headers arrived: the connection broke.
      ResponseError: (error: HttpClientError.ResponseError) =>
        Effect.fail(new A2ATransportError({ url: error.request.url, ...fromHttpClientError(error) }))
    }

    const post = (
      endpoint: PeerEndpoint,
      protocol: PeerProtocol,
      requestId: string,
      body: unknown,
      expect: Expected
    ): Effect.Effect<SendReply, A2AError> => {
      const { url, version } = protocol
      const via = endpoint.viaPlatform === true ? "proxy" : "peer"
      const handle = (response: HttpClientResponse.HttpClientResponse, text: string) =>
        classifyResponse(url, requestId, response, text, version, expect, via)
      const request = (target: string) =>
        HttpClientRequest.post(target, { headers: headersFor(version), body: HttpBody.unsafeJson(body) })
      const path = proxyPath(endpoint, url)
      const sent = path !== undefined && throughPlatform !== undefined
        ? throughPlatform(request(path), handle, bounds(url))
        : execute(request(url), handle, bounds(url))
      return Effect.catchTags(sent, recover)
    }

    // Only a Task answers GetTask and CancelTask; classifyResponse lets nothing else through for "task".
    const postForTask = (
      endpoint: PeerEndpoint,
      protocol: PeerProtocol,
      requestId: string,
      body: unknown
    ): Effect.Effect<TaskReply, A2AError> =>
      Effect.flatMap(post(endpoint, protocol, requestId, body, "task"), (reply) =>
        reply._tag === "TaskReply"
          ? Effect.succeed(reply)
          : Effect.fail(
            new A2AResponseError({ url: protocol.url, reason: "InvalidResult", status: 200, detail: `expected a Task, got ${reply._tag}` })
          ))

    // The card read is bounded like any request, and its failure only means "the card does not say".
    const readCard = (url: string): Effect.Effect<CardProtocol | undefined> => {
      const cardUrl = cardUrlOf(url)
      if (cardUrl === undefined) return Effect.succeed(undefined)
      return execute(
        HttpClientRequest.get(cardUrl, { headers: CARD_HEADERS }),
        (response, text) =>
          Effect.succeed(
            response.status === 200
              ? Either.getOrUndefined(Either.map(parseJson(text), (card) => cardProtocol(card, cardUrl)))
              : undefined
          ),
        bounds(cardUrl)
      ).pipe(
        Effect.catchAll((error) =>
          Effect.logDebug(`agent card ${cardUrl} not read (${error.message}); A2A 1.0 is tried first`).pipe(Effect.as(undefined))
        )
      )
    }

    const idle = Duration.decode(options.idle ?? DEFAULT_STREAM_IDLE)
    const maxBytes = bounded.maxBytes

    // One streaming POST: its events until the final one. The wait for the response headers is bounded
    // by `timeout`, the wait for each event by `idle`, all the events together by `maxResponseBytes`.
    // The request carries no `RequestBounds`: a stream has no overall deadline. Ending the stream
    // (after the final event, on a failure, or when the consumer stops) closes the connection.
    const openStream = (
      endpoint: PeerEndpoint,
      protocol: PeerProtocol,
      requestId: string,
      body: unknown,
      method: string
    ): Stream.Stream<StreamEvent, A2AError> => {
      const { url, version } = protocol
      const via = endpoint.viaPlatform === true ? "proxy" : "peer"
      const path = proxyPath(endpoint, url)
      const viaProxy = path !== undefined && platformClient !== undefined
      const http = viaProxy ? platformClient : client
      const request = HttpClientRequest.post(viaProxy ? path : url, {
        headers: { ...headersFor(version), accept: "text/event-stream" },
        body: HttpBody.unsafeJson(body)
      })
      const tooLarge = (status: number) => () =>
        new A2AResponseError({ url, reason: "TooLarge", status, detail: `more than ${maxBytes} bytes` })
      const noAnswer = () =>
        new A2ATransportError({ url, reason: "Timeout", detail: `no answer within ${Duration.format(timeout)}` })
      // The body broke after the headers arrived: the stream dropped.
      const broke = (error: HttpClientError.ResponseError) =>
        Stream.fail(
          new A2ATransportError({
            url,
            reason: "StreamDropped",
            detail: `the stream dropped before its final event: ${fromHttpClientError(error).detail}`,
            cause: error
          })
        )

      const answer = (response: HttpClientResponse.HttpClientResponse): Stream.Stream<StreamEvent, A2AError> => {
        if (response.status === 200 && isEventStream(response.headers["content-type"])) {
          const bytes = boundedBytes(Stream.catchTag(response.stream, "ResponseError", broke), maxBytes, tooLarge(200))
          return sseEvents(bytes, maxBytes, tooLarge(200)).pipe(
            Stream.mapEffect((event) => classifyStreamEvent(url, requestId, event.data, version))
          )
        }
        // Not a stream: the JSON (or status) a server answers with before a stream starts, read whole.
        const bytes = boundedBytes(response.stream, maxBytes, tooLarge(response.status))
        const text = Stream.mkString(Stream.decodeText(bytes)).pipe(
          Effect.timeoutFail({ duration: timeout, onTimeout: noAnswer }),
          Effect.catchTag("ResponseError", (error) =>
            Effect.fail(new A2ATransportError({ url: error.request.url, ...fromHttpClientError(error) })))
        )
        return Stream.unwrap(Effect.flatMap(text, (text): Effect.Effect<Stream.Stream<StreamEvent, A2AError>, A2AError> =>
          response.status === 200
            ? Effect.map(classifyStreamEvent(url, requestId, text, version), Stream.make)
            : Effect.flatMap(
              classifyResponse(url, requestId, response, text, version, "send", via),
              // A proxy's 202 queued: nothing to stream now (the request is delivered later).
              () => responseError(url, response.status, "UnexpectedAccepted", "a streaming request was queued")
            )))
      }

      const events = Stream.unwrap(
        http.execute(request).pipe(
          Effect.timeoutFail({ duration: timeout, onTimeout: noAnswer }),
          Effect.provideService(RequestBounds, undefined),
          Effect.catchTags(recover),
          Effect.map(answer)
        )
      ).pipe(
        Stream.timeoutFail(
          () => new A2ATransportError({ url, reason: "Timeout", detail: `no stream event for ${Duration.format(idle)}` }),
          idle
        )
      )

      // After the final event the stream ends (and the connection with it); an end before it is a drop.
      const untilFinal = Stream.unwrap(Effect.map(Ref.make(false), (ended) =>
        events.pipe(
          Stream.takeUntil(isFinalEvent),
          Stream.tap((event) => (isFinalEvent(event) ? Ref.set(ended, true) : Effect.void)),
          Stream.concat(Stream.unwrap(Effect.map(Ref.get(ended), (done) =>
            done
              ? Stream.empty
              : Stream.fail(
                new A2ATransportError({ url, reason: "StreamDropped", detail: "the stream ended before its final event" })
              ))))
        )))

      return Stream.withSpan(untilFinal, `A2ATransportHttp.${method}`, {
        kind: "client",
        captureStackTrace: false,
        attributes: { "a2a.method": method, "a2a.protocol_version": version, "url.full": url }
      })
    }

    const choice = yield* makeProtocolChoice({
      setting: options.protocol ?? "auto",
      readCard,
      capacity: options.protocolCache?.capacity ?? DEFAULT_CAPACITY,
      timeToLive: options.protocolCache?.timeToLive ?? DEFAULT_TIME_TO_LIVE
    })

    return A2ATransport.of({
      protocolFor: choice.protocolFor,
      rememberProtocol: choice.rememberProtocol,
      send: (request) => {
        const fields = messageFields(request)
        const body = request.protocol.version === "1.0" ? v1SendMessageBody(fields) : messageSendBody(fields)
        return post(request.endpoint, request.protocol, request.requestId, body, "send")
      },
      getTask: (request) =>
        postForTask(
          request.endpoint,
          request.protocol,
          request.requestId,
          request.protocol.version === "1.0"
            ? v1GetTaskBody(request.requestId, request.taskId)
            : tasksGetBody(request.requestId, request.taskId)
        ),
      cancelTask: (request) =>
        postForTask(
          request.endpoint,
          request.protocol,
          request.requestId,
          request.protocol.version === "1.0"
            ? v1CancelTaskBody(request.requestId, request.taskId)
            : tasksCancelBody(request.requestId, request.taskId)
        ),
      sendStream: (request) => {
        const fields = messageFields(request)
        return request.protocol.version === "1.0"
          ? openStream(request.endpoint, request.protocol, request.requestId, v1SendStreamingMessageBody(fields), "SendStreamingMessage")
          : openStream(request.endpoint, request.protocol, request.requestId, messageStreamBody(fields), "message/stream")
      },
      subscribe: (request) =>
        request.protocol.version === "1.0"
          ? openStream(
            request.endpoint,
            request.protocol,
            request.requestId,
            v1SubscribeToTaskBody(request.requestId, request.taskId),
            "SubscribeToTask"
          )
          : openStream(
            request.endpoint,
            request.protocol,
            request.requestId,
            tasksResubscribeBody(request.requestId, request.taskId),
            "tasks/resubscribe"
          )
    })
  })

/** What the body of a send, plain or streaming, is made of. */
const messageFields = (request: SendMessage) => ({
  requestId: request.requestId,
  messageId: request.messageId,
  text: request.text,
  delegationId: request.delegationId,
  metadata: request.metadata
})

/**
 * The live transport layer; requires the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<A2ATransport, never, HttpClient.HttpClient> =>
  Layer.effect(A2ATransport, make(options))
