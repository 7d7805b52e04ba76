/**
 * The live A2A transport: JSON-RPC 1.0 or v0.3 over the host's `HttpClient`, with the
 * per-peer version choice (`A2A_PROTOCOL`) read from agent cards.
 *
 * @since 0.1.0
 */
import { HttpBody, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError, HttpClientResponse } from "@effect/platform"
import { Duration, Effect, Either, Layer, Option, Schema } from "effect"
import { DEFAULT_CAPACITY, DEFAULT_TIME_TO_LIVE, makeProtocolChoice } from "../services/ProtocolChoice.js"
import type { CardProtocol, ProtocolSetting, ProtocolVersion } from "../services/A2A.js"
import {
  AGENT_CARD_PATH,
  cardProtocol,
  errorInfoReason,
  JsonRpcResponse,
  Message,
  messageFromV1,
  messageSendBody,
  Task,
  taskFromV1,
  tasksCancelBody,
  tasksGetBody,
  V1Message,
  V1Task,
  v1CancelTaskBody,
  v1GetTaskBody,
  v1SendMessageBody,
  VERSION_HEADER
} from "../services/A2A.js"
import type { A2AError, PeerProtocol, SendReply } from "../services/A2ATransport.js"
import type { PeerEndpoint } from "../services/Discovery.js"

import {
  A2ARequestError,
  A2AResponseError,
  A2ATransport,
  A2ATransportError,
  JsonRpcError,
  MessageReply,
  QueuedReply,
  TaskReply
} from "../services/A2ATransport.js"
import { formatStack } from "../internal/stack.js"
import { excerpt } from "../internal/text.js"
import { NativeRequestBounds } from "../services/RequestBounds.js"
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
  if (reply.error !== undefined) {
    const reason = errorInfoReason(reply.error.data)
    return Effect.fail(formatStack(
      new JsonRpcError({
        code: reply.error.code,
        rpcMessage: excerpt(reply.error.message, RPC_MESSAGE_EXCERPT),
        ...(keptData(reply.error.data) ? { data: reply.error.data } : {}),
        ...(reason === undefined ? {} : { reason }),
        protocolVersion: version
      })
    ))
  }
  if (!("result" in json.right)) return responseError(url, status, "EmptyReply", "")
  const result = reply.result
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    return responseError(url, status, "InvalidResult", `result is ${result === null ? "null" : typeof result}`)
  }
  const answer = version === "1.0" ? v1Result(result, expect) : v03Result(result, expect)
  return Either.isRight(answer) ? Effect.succeed(answer.right) : responseError(url, status, "InvalidResult", answer.left)
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
const v03Result = (result: object, expect: Expected): Either.Either<SendReply, string> => {
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
const v1Result = (result: object, expect: Expected): Either.Either<SendReply, string> => {
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
    const throughPlatform = platform === undefined ? undefined : textWithin(platform.withPriority("outcome", timeout), bounded)
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
      // Whether the platform's proxy answers depends on the endpoint, not on the bearer settings.
      const via = endpoint.viaPlatform === true ? "proxy" : "peer"
      const handle = (response: HttpClientResponse.HttpClientResponse, text: string) =>
        classifyResponse(url, requestId, response, text, version, expect, via)
      const request = (target: string) =>
        HttpClientRequest.post(target, { headers: headersFor(version), body: HttpBody.unsafeJson(body) })
      const sent = via === "proxy" && throughPlatform !== undefined && proxyPrefix !== undefined &&
          url.startsWith(proxyPrefix)
        ? throughPlatform(request(url.slice(proxyPrefix.length - 1)), handle, bounds(url))
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
        const fields = {
          requestId: request.requestId,
          messageId: request.messageId,
          text: request.text,
          delegationId: request.delegationId,
          metadata: request.metadata
        }
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
        )
    })
  })

/**
 * The live transport layer; requires the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<A2ATransport, never, HttpClient.HttpClient> =>
  Layer.effect(A2ATransport, make(options))
