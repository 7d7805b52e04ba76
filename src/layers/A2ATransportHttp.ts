/**
 * The live A2A transport: JSON-RPC over the host's `HttpClient`.
 *
 * @since 0.1.0
 */
import { HttpBody, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError, HttpClientResponse } from "@effect/platform"
import { Duration, Effect, Either, Layer, Schema } from "effect"
import { JsonRpcResponse, Message, messageSendBody, Task, tasksGetBody } from "../services/A2A.js"
import type { A2AError, SendReply } from "../services/A2ATransport.js"
import type { PeerEndpoint } from "../services/Discovery.js"

import {
  A2AResponseError,
  A2ATransport,
  A2ATransportError,
  JsonRpcError,
  MessageReply,
  QueuedReply,
  TaskReply
} from "../services/A2ATransport.js"
import type { PlatformSettings } from "./internal/http.js"
import { makeBounded } from "./RequestTimeout.js"
import {
  errorText,
  field,
  fromHttpClientError,
  parseJson,
  platformRequests,
  retryAfterMillis,
  withText
} from "./internal/http.js"

/**
 * Options of the live transport.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Sent as `X-Workspace-ID` on every A2A POST. */
  readonly workspaceId: string
  /** Upper bound of one request, body included (`DELEGATION_TIMEOUT`). */
  readonly timeout: Duration.DurationInput
  /**
   * The platform's credentials, for endpoints that are the platform's A2A proxy
   * (`PeerEndpoint.viaPlatform`) and start with `platformUrl`. Never sent anywhere else.
   */
  readonly platform?: PlatformSettings | undefined
}

const decodeEnvelope = Schema.decodeUnknownEither(JsonRpcResponse)
const decodeTask = Schema.decodeUnknownEither(Task)
const decodeMessage = Schema.decodeUnknownEither(Message)
const decodeQueued = Schema.decodeUnknownEither(Schema.Struct({
  queued: Schema.Literal(true),
  queue_id: Schema.optional(Schema.String),
  queue_depth: Schema.optional(Schema.Int),
  message: Schema.optional(Schema.String)
}))

const RETRYABLE_STATUS = new Set([408, 429, 502, 503, 504])

/**
 * Turns one HTTP response into a reply or a typed error. A 202 is read before any
 * JSON-RPC decoding because `{"queued": true}` is the proxy's contract, not A2A.
 *
 * @since 0.1.0
 * @category utils
 */
export const classifyResponse = (
  url: string,
  requestId: string,
  response: HttpClientResponse.HttpClientResponse,
  text: string
): Effect.Effect<SendReply, A2AError> => {
  const status = response.status
  const responseError = (reason: A2AResponseError["reason"], detail: string) =>
    Effect.fail(new A2AResponseError({ url, reason, status, detail }))

  if (status === 202) {
    const queued = Either.flatMap(parseJson(text), (json) => Either.mapLeft(decodeQueued(json), String))
    return Either.isRight(queued)
      ? Effect.succeed(
        new QueuedReply({
          ...(queued.right.queue_id === undefined ? {} : { queueId: queued.right.queue_id }),
          ...(queued.right.queue_depth === undefined ? {} : { queueDepth: queued.right.queue_depth }),
          ...(queued.right.message === undefined ? {} : { message: queued.right.message })
        }, { disableValidation: true })
      )
      : responseError("UnexpectedAccepted", errorText(text))
  }

  if (status !== 200) {
    const json = Either.getOrUndefined(parseJson(text))
    if (status === 502 && field(json, "delivery_confirmed") === true) {
      return responseError("DeliveryConfirmed", errorText(text))
    }
    if (RETRYABLE_STATUS.has(status)) {
      return Effect.flatMap(retryAfterMillis(response.headers, json), (retryAfter) =>
        Effect.fail(
          new A2ATransportError({
            url,
            reason: "Status",
            status,
            ...(retryAfter === undefined ? {} : { retryAfterMillis: retryAfter }),
            detail: errorText(text)
          })
        ))
    }
    return responseError("Status", errorText(text))
  }

  const json = parseJson(text)
  if (Either.isLeft(json)) return responseError("InvalidJson", "")
  const envelope = decodeEnvelope(json.right)
  if (Either.isLeft(envelope) || typeof json.right !== "object" || json.right === null) {
    return responseError("NotJsonRpc", "expected an object with jsonrpc \"2.0\" and a result or an error")
  }
  const reply = envelope.right
  if (reply.id !== undefined && reply.id !== null && reply.id !== requestId) {
    return responseError("IdMismatch", `sent ${requestId}, got ${String(reply.id)}`)
  }
  if (reply.error !== undefined) {
    return Effect.fail(
      new JsonRpcError({
        code: reply.error.code,
        rpcMessage: reply.error.message,
        ...(reply.error.data === undefined ? {} : { data: reply.error.data })
      })
    )
  }
  if (!("result" in json.right)) return responseError("EmptyReply", "")
  const result = reply.result
  if (typeof result !== "object" || result === null || Array.isArray(result)) {
    return responseError("InvalidResult", `result is ${result === null ? "null" : typeof result}`)
  }
  if (field(result, "kind") === "task") {
    const task = decodeTask(result)
    return Either.isRight(task)
      ? Effect.succeed(new TaskReply({ task: task.right, raw: result }, { disableValidation: true }))
      : responseError("InvalidResult", "malformed Task")
  }
  const message = decodeMessage(result)
  return Either.isRight(message)
    ? Effect.succeed(new MessageReply({ message: message.right, raw: result }, { disableValidation: true }))
    : responseError("InvalidResult", "malformed Message")
}

/**
 * Builds the transport from the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const timeout = Duration.decode(options.timeout)
    const execute = yield* makeBounded(client, timeout)
    const platform = options.platform
    const peerHeaders = { "x-workspace-id": options.workspaceId }
    // The platform's proxy also gets the platform bearer and org header; a peer never does.
    const proxyHeaders = platform === undefined
      ? peerHeaders
      : { ...platformRequests(platform).headers, ...peerHeaders }
    const proxyPrefix = platform === undefined ? undefined : `${platform.platformUrl.replace(/\/+$/, "")}/`
    const headersFor = (endpoint: PeerEndpoint) =>
      endpoint.viaPlatform === true && proxyPrefix !== undefined && endpoint.url.startsWith(proxyPrefix)
        ? proxyHeaders
        : peerHeaders

    // The error mapping is built once: the request's URL is the endpoint's.
    const onTimeout = (request: HttpClientRequest.HttpClientRequest) =>
      new A2ATransportError({
        url: request.url,
        reason: "Timeout",
        detail: `request timed out after ${Duration.format(timeout)}`
      })
    const recover = {
      RequestError: (error: HttpClientError.RequestError) =>
        error.reason === "Transport"
          ? Effect.fail(new A2ATransportError({ url: error.request.url, ...fromHttpClientError(error) }))
          : Effect.fail(
            new A2AResponseError({ url: error.request.url, reason: "Status", status: 0, detail: error.message })
          ),
      // Reading the body failed after the headers arrived: the connection broke.
      ResponseError: (error: HttpClientError.ResponseError) =>
        Effect.fail(new A2ATransportError({ url: error.request.url, ...fromHttpClientError(error) }))
    }

    const post = (endpoint: PeerEndpoint, requestId: string, body: unknown): Effect.Effect<SendReply, A2AError> => {
      const url = endpoint.url
      return Effect.catchTags(
        execute(
          HttpClientRequest.post(url, { headers: headersFor(endpoint), body: HttpBody.unsafeJson(body) }),
          (response) => withText(response, (text) => classifyResponse(url, requestId, response, text)),
          onTimeout
        ),
        recover
      )
    }

    return A2ATransport.of({
      send: (request) =>
        post(
          request.endpoint,
          request.requestId,
          messageSendBody({
            requestId: request.requestId,
            messageId: request.messageId,
            text: request.text,
            delegationId: request.delegationId,
            metadata: request.metadata
          })
        ),
      getTask: (request) =>
        post(request.endpoint, request.requestId, tasksGetBody(request.requestId, request.taskId)).pipe(
          Effect.flatMap((reply) =>
            reply._tag === "TaskReply"
              ? Effect.succeed(reply)
              : Effect.fail(
                new A2AResponseError({
                  url: request.endpoint.url,
                  reason: "InvalidResult",
                  status: 200,
                  detail: `tasks/get answered with ${reply._tag}`
                })
              )
          )
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
