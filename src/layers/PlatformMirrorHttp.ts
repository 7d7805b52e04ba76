/**
 * The live platform mirror: record, update, notify, list and delegate on the platform's HTTP API.
 *
 * @since 0.1.0
 */
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Duration, Effect, Either, Layer, Schema } from "effect"
import type { PlatformDelegated } from "../services/PlatformMirror.js"
import { PlatformDelegationRow, PlatformError, PlatformMirror, truncate } from "../services/PlatformMirror.js"

import { formatStack } from "../internal/stack.js"
import {
  DEFAULT_MAX_RESPONSE_BYTES,
  errorText,
  fromHttpClientError,
  parseJson,
  pathOf,
  platformHint,
  textWithin
} from "./internal/http.js"
import { PlatformHttpClient } from "./PlatformHttpClient.js"

/**
 * Options of the live mirror.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Upper bound of each call, body included, from when it is sent (the original used 10 seconds);
   * the wait for a place under the platform's rate limit before it is not bounded.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** Bytes of a response body read at most (`DELEGATION_MAX_RESPONSE_BYTES`, default 10 MiB); past it the request fails. */
  readonly maxResponseBytes?: number | undefined
}

/** Characters of the result sent as `response_preview`. */
export const RESPONSE_PREVIEW = 500

const decodeRows = Schema.decodeUnknownEither(Schema.Array(PlatformDelegationRow))
const decodeDelegated = Schema.decodeUnknownEither(Schema.Struct({
  delegation_id: Schema.NonEmptyString,
  status: Schema.optionalWith(Schema.String, { default: () => "delegated" }),
  idempotent_hit: Schema.optionalWith(Schema.Boolean, { default: () => false })
}))

/**
 * Builds the mirror from the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const platform = yield* PlatformHttpClient
    const settings = platform.settings
    const timeout = Duration.decode(options.timeout ?? "10 seconds")
    const bounds = { timeout, maxBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES }
    const byPriority = {
      outcome: textWithin(platform.withPriority("outcome"), bounds),
      background: textWithin(platform.withPriority("background"), bounds)
    }
    const selfPath = pathOf`/workspaces/${settings.workspaceId}`
    if (Either.isLeft(selfPath)) {
      return yield* Effect.dieMessage(`workspace id ${JSON.stringify(settings.workspaceId)} cannot be a URL path segment`)
    }
    const self = selfPath.right

    // Each operation's response handling and error mapping are built once, not per call. Under the rate
    // limit, the calls that start or finish a delegation (record, delegate, update) go before the list
    // polls and the notifications.
    const operation = <A>(
      name: PlatformError["operation"],
      onOk: (response: HttpClientResponse.HttpClientResponse, text: string) => Effect.Effect<A, PlatformError>
    ) => {
      const execute = byPriority[name === "list" || name === "notify" ? "background" : "outcome"]
      const handle = (response: HttpClientResponse.HttpClientResponse, text: string) =>
        response.status >= 200 && response.status < 300
          ? onOk(response, text)
          : Effect.fail(formatStack(
            new PlatformError({
              operation: name,
              reason: "Status",
              status: response.status,
              detail: errorText(text) + platformHint(settings, response.status)
            })
          ))
      const onBounds = {
        onTimeout: () =>
          new PlatformError({ operation: name, reason: "Timeout", detail: `no answer within ${Duration.format(timeout)}` }),
        onTooLarge: (maxBytes: number, status: number) =>
          new PlatformError({ operation: name, reason: "TooLarge", status, detail: `the reply is larger than ${maxBytes} bytes` })
      }
      const failed = (error: HttpClientError.HttpClientError) => {
        if (error._tag === "RequestError" && error.reason === "InvalidUrl") {
          return Effect.fail(
            new PlatformError({
              operation: name,
              reason: "InvalidUrl",
              detail: `${error.request.url} does not parse; check PLATFORM_URL`,
              cause: error
            })
          )
        }
        const failure = fromHttpClientError(error)
        return Effect.fail(
          new PlatformError({
            operation: name,
            reason: "Transport",
            detail: failure.detail + platformHint(settings),
            cause: failure.cause
          })
        )
      }
      const recover = { RequestError: failed, ResponseError: failed }
      return (request: HttpClientRequest.HttpClientRequest): Effect.Effect<A, PlatformError> =>
        Effect.catchTags(execute(request, handle, onBounds), recover)
    }

    const ok = () => Effect.void
    const postJson = (path: string, body: unknown) => HttpClientRequest.post(path, { body: HttpBody.unsafeJson(body) })
    const record = operation("record", ok)
    const update = operation("update", ok)
    const notify = operation("notify", ok)
    const list = operation("list", (_, text) => {
      const rows = Either.flatMap(parseJson(text), (json) => Either.mapLeft(decodeRows(json), String))
      return Either.isRight(rows)
        ? Effect.succeed(rows.right)
        : Effect.fail(formatStack(new PlatformError({ operation: "list", reason: "Decode", detail: "expected a JSON array" })))
    })

    const delegate = operation("delegate", (_, text): Effect.Effect<PlatformDelegated, PlatformError> => {
      const body = Either.flatMap(parseJson(text), (json) => Either.mapLeft(decodeDelegated(json), String))
      return Either.isRight(body)
        ? Effect.succeed({
          delegationId: body.right.delegation_id,
          status: body.right.status,
          idempotentHit: body.right.idempotent_hit
        })
        : Effect.fail(
          new PlatformError({ operation: "delegate", reason: "Decode", detail: "expected a JSON object with a delegation_id" })
        )
    })

    return PlatformMirror.of({
      record: (request) =>
        record(postJson(`${self}/delegations/record`, {
          target_id: request.targetId,
          task: request.task,
          delegation_id: request.delegationId
        })),
      update: (request) =>
        Either.match(pathOf`/delegations/${request.delegationId}/update`, {
          onLeft: (id) =>
            Effect.fail(
              new PlatformError({ operation: "update", reason: "InvalidUrl", detail: `delegation id ${JSON.stringify(id)} cannot be a URL path segment` })
            ),
          onRight: (path) =>
            update(postJson(self + path, {
              status: request.status,
              error: request.error,
              response_preview: truncate(request.responsePreview, RESPONSE_PREVIEW)
            }))
        }),
      notify: (request) =>
        notify(postJson(`${self}/notify`, {
          message: request.message,
          type: "delegation_complete",
          task_id: request.delegationId,
          target_workspace_id: request.targetId,
          status: request.status
        })),
      list: list(HttpClientRequest.get(`${self}/delegations`)),
      delegate: (request) =>
        delegate(postJson(`${self}/delegate`, {
          target_id: request.targetId,
          task: request.task,
          idempotency_key: request.idempotencyKey
        }))
    })
  })

/**
 * The live mirror layer, over the layer's `PlatformHttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<PlatformMirror, never, PlatformHttpClient> =>
  Layer.effect(PlatformMirror, make(options))
