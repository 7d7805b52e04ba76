/**
 * The live discovery: `GET /registry/discover/{id}` on the platform registry.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Duration, Effect, Either, Layer, Schema } from "effect"
import { Discovery, DiscoveryError, isHttpUrl, PeerEndpoint, withoutUserinfo } from "../services/Discovery.js"

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
import { PlatformHttpClient, RATE_LIMIT_WAIT_CODE } from "./PlatformHttpClient.js"

/**
 * Options of the live discovery.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Upper bound of one discovery request, body included, from when it is sent; and of the wait for
   * a place under the platform's rate limit before it (`DELEGATION_TIMEOUT`).
   */
  readonly timeout: Duration.DurationInput
  /** Bytes of a response body read at most (`DELEGATION_MAX_RESPONSE_BYTES`, default 10 MiB); past it the request fails. */
  readonly maxResponseBytes?: number | undefined
}

const DiscoverBody = Schema.Struct({
  id: Schema.optional(Schema.String),
  url: Schema.optional(Schema.NullOr(Schema.String)),
  name: Schema.optional(Schema.NullOr(Schema.String))
})
const decodeBody = Schema.decodeUnknownEither(DiscoverBody)

/**
 * Builds the discovery service from the host's `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const platform = yield* PlatformHttpClient
    const settings = platform.settings
    const callerHeader = { "x-workspace-id": settings.workspaceId }
    const timeout = Duration.decode(options.timeout)
    // A delegation waits for the rate limit as long as it may wait for an answer, and no longer.
    const execute = textWithin(platform.withPriority("outcome", timeout), {
      timeout,
      maxBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES
    })

    const resolve = (workspaceId: string): Effect.Effect<PeerEndpoint, DiscoveryError> => {
      const fail = (
        reason: DiscoveryError["reason"],
        detail: string,
        extra: { readonly status?: number; readonly cause?: unknown } = {}
      ) => Effect.fail(formatStack(new DiscoveryError({ workspaceId, reason, detail, ...extra })))
      const path = pathOf`/registry/discover/${workspaceId}`
      if (Either.isLeft(path)) return fail("InvalidWorkspaceId", "")
      const request = HttpClientRequest.get(path.right, { headers: callerHeader })
      const onResponse = (
        response: HttpClientResponse.HttpClientResponse,
        text: string
      ): Effect.Effect<PeerEndpoint, DiscoveryError> => {
        if (response.status !== 200) {
          return fail("Status", errorText(text) + platformHint(settings, response.status), { status: response.status })
        }
        const body = Either.flatMap(parseJson(text), (json) => Either.mapLeft(decodeBody(json), String))
        if (Either.isLeft(body)) return fail("Decode", "expected a JSON object with a url")
        const { name } = body.right
        if (body.right.url === undefined || body.right.url === null || body.right.url === "") return fail("NoUrl", "")
        const url = withoutUserinfo(body.right.url)
        if (!isHttpUrl(url)) return fail("InvalidUrl", url)
        return Effect.succeed(
          new PeerEndpoint({ id: workspaceId, url, ...(name === undefined || name === null ? {} : { name }) }, {
            disableValidation: true
          })
        )
      }
      const transport = (error: HttpClientError.HttpClientError) => {
        if (error._tag === "RequestError" && isRateLimitWait(error.cause)) {
          return fail("RateLimited", `no place under the platform's rate limit within ${Duration.format(timeout)}`)
        }
        const failure = fromHttpClientError(error)
        return fail("Transport", failure.detail + platformHint(settings), { cause: failure.cause })
      }
      return execute(
        request,
        onResponse,
        {
          onTimeout: () =>
            new DiscoveryError({ workspaceId, reason: "Transport", detail: `timed out after ${Duration.format(timeout)}` }),
          onTooLarge: (maxBytes, status) =>
            new DiscoveryError({ workspaceId, reason: "TooLarge", status, detail: `more than ${maxBytes} bytes` })
        }
      ).pipe(
        Effect.catchTags({
          RequestError: (error) =>
            error.reason === "InvalidUrl"
              ? fail("InvalidPlatformUrl", error.request.url, { cause: error })
              : transport(error),
          ResponseError: transport
        })
      )
    }

    return Discovery.of({ resolve })
  })

/**
 * The live discovery layer, over the layer's `PlatformHttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Discovery, never, PlatformHttpClient> =>
  Layer.effect(Discovery, make(options))

const isRateLimitWait = (cause: unknown): boolean =>
  cause instanceof Error && (cause as Error & { readonly code?: unknown }).code === RATE_LIMIT_WAIT_CODE
