/**
 * The platform's API as one `HttpClient`, shared by every platform call of a layer (discovery,
 * the mirror, the A2A proxy), made of combinators over the host's client:
 * - paths relative to `PLATFORM_URL`, with the bearer (`PLATFORM_TOKEN`) and the org header;
 * - each request within the bounds its caller gives (`RequestBounds`);
 * - paced by the platform's rate limit, learned from its answers (`X-RateLimit-*`): past the
 *   budget, requests wait for a place in order (those that start or finish a delegation's
 *   outcome first) instead of being sent to be refused; `PLATFORM_RATE_LIMIT` is a ceiling a host
 *   may set lower;
 * - a refusal before the platform acted on the request (429, 503 `platform_unavailable`) makes
 *   every waiting request wait for its `Retry-After`, and the request is sent again.
 *
 * Build one per host: two of them would each think they have the platform's whole budget.
 *
 * @since 0.4.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Cause, Clock, Context, Duration, Effect, Either, Exit, Layer, Option } from "effect"
import type { Scope } from "effect"
import * as Warnings from "../internal/warnings.js"
import { NativeRequestBounds } from "../services/RequestBounds.js"
import type { PlatformSettings } from "./internal/http.js"
import { field, parseJson, platformHeaders, retryAfterMillis } from "./internal/http.js"
import { boundedClient, codedError } from "./internal/nativeBounds.js"
import * as RateGate from "./internal/rateGate.js"

/**
 * Where the platform is, who we are on it, and the host's own ceiling on its requests.
 *
 * @since 0.4.0
 * @category models
 */
export interface Options extends PlatformSettings {
  /**
   * `PLATFORM_RATE_LIMIT`: at most `limit` requests per `interval`, even when the platform would
   * allow more. The platform's own limit is followed without it.
   */
  readonly rateLimit?: { readonly limit: number; readonly interval: Duration.DurationInput } | undefined
}

/**
 * The platform client of a layer.
 *
 * @since 0.4.0
 * @category tags
 */
export class PlatformHttpClient extends Context.Tag("effect-a2a-delegation/PlatformHttpClient")<PlatformHttpClient, {
  /**
   * Takes paths relative to `PLATFORM_URL`; adds the credentials, paces, and re-sends refused
   * requests. Its requests wait for a place as the calls that decide an outcome do, without bound.
   */
  readonly client: HttpClient.HttpClient
  /** The same client, its requests waiting for a place at `priority`, at most `maxWait` (then a `RequestError`). */
  readonly withPriority: (priority: Priority, maxWait?: Duration.Duration) => HttpClient.HttpClient
  readonly settings: PlatformSettings
  /** Requests waiting for a place under the rate limit. */
  readonly waiting: Effect.Effect<number>
}>() {}

/**
 * Who waits first for a place under the rate limit: the calls that start or finish a delegation
 * (`outcome`: record, discover, a send through the proxy, delegate, update), then the rest
 * (`background`: the reconciler's list, notify).
 *
 * @since 0.4.0
 * @category models
 */
export type Priority = RateGate.Priority

/**
 * The `code` of the cause of a request that found no place under the rate limit within its wait.
 *
 * @since 0.4.0
 * @category constants
 */
export const RATE_LIMIT_WAIT_CODE = "EA2A_RATE_LIMIT_WAIT"

/** The wait before sending a refused request again when the platform names none. */
const DEFAULT_REFUSAL_MILLIS = 1000

/**
 * Builds the client over the host's `HttpClient`; its pacing lives in the current scope.
 *
 * @since 0.4.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<PlatformHttpClient["Type"], never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const host = yield* HttpClient.HttpClient
    const native = Option.isSome(yield* Effect.serviceOption(NativeRequestBounds))
    const warnings = yield* Warnings.make()
    const gate = yield* RateGate.make({
      ceiling: options.rateLimit === undefined
        ? undefined
        : { limit: options.rateLimit.limit, interval: Duration.decode(options.rateLimit.interval) },
      onWait: ({ limit, millis, refused, waiting }) =>
        warnings.warn(
          "platform rate limit",
          `${refused ? "the platform refused a request (rate limit)" : "the platform's rate limit is reached"}` +
            `${limit === undefined ? "" : ` (${limit} requests)`}: ${waiting} request(s) wait for a place, ` +
            `the next in ${Math.ceil(millis / 1000)}s; nothing is dropped`
        )
    })
    const base = options.platformUrl.replace(/\/+$/, "")
    const headers = platformHeaders(options)
    const bounded = boundedClient(host, native)
    // The priority is the client's own, not a value in the request's context: no context copy per request.
    const withPriority = (priority: Priority, maxWait?: Duration.Duration): HttpClient.HttpClient =>
      bounded.pipe(
        HttpClient.transform((execute, request) => paced({ gate, execute, request, priority, maxWait })),
        HttpClient.mapRequest((request) => HttpClientRequest.setHeaders(HttpClientRequest.prependUrl(request, base), headers))
      )
    const { orgId, platformToken, platformUrlIsDefault, workspaceId } = options
    return PlatformHttpClient.of({
      client: withPriority("outcome"),
      withPriority,
      settings: { orgId, platformToken, platformUrl: base, platformUrlIsDefault, workspaceId },
      waiting: gate.waiting
    })
  })

/**
 * The platform client as a layer, over the host's `HttpClient`.
 *
 * @since 0.4.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<PlatformHttpClient, never, HttpClient.HttpClient> =>
  Layer.scoped(PlatformHttpClient, make(options))

/** One request to send through the gate, with the place it waits for. */
interface Send {
  readonly gate: RateGate.RateGate
  readonly execute: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>
  readonly request: HttpClientRequest.HttpClientRequest
  readonly priority: Priority
  readonly maxWait: Duration.Duration | undefined
}

/**
 * One request through the gate. While the platform has shown no limit and nobody waits, it is sent
 * at once and its answer only looked at; otherwise it waits for a place, and is sent again while
 * the platform refuses it before acting on it.
 */
const paced = (send: Send): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> =>
  Effect.suspend(() => {
    const { execute, gate } = send
    if (!gate.isOpen()) return queued(send)
    return Effect.flatMap(execute, (response) => {
      if (gate.plain(response.status, response.headers)) return Effect.succeed(response)
      // The platform speaks of a limit (or refused): learn from it, and wait from now on.
      return Effect.flatMap(refusal(response), (refusedFor) =>
        Effect.zipRight(
          gate.observed({ headers: response.headers, refusedForMillis: refusedFor }),
          refusedFor === undefined ? Effect.succeed(response) : queued(send)
        ))
    })
  })

/** The request waits for a place, then again after each refusal. */
const queued = (
  { execute, gate, maxWait, priority, request }: Send
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> =>
  Effect.flatMap(Clock.currentTimeMillis, (start) => {
    const deadline = maxWait === undefined ? undefined : start + Duration.toMillis(maxWait)
    const attempt: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> = Effect.gen(
      function*() {
        const now = yield* Clock.currentTimeMillis
        const left = deadline === undefined ? undefined : Duration.millis(Math.max(0, deadline - now))
        const ticket = yield* gate.take(priority, left)
        if (ticket === undefined) return yield* Effect.fail(waitedTooLong(request, maxWait))
        // A request cut short gives its place back, or the count of requests in flight would never come down.
        const exit = yield* Effect.exit(Effect.onInterrupt(execute, () => gate.unanswered(ticket)))
        if (Exit.isFailure(exit)) {
          if (!Cause.isInterruptedOnly(exit.cause)) yield* gate.unanswered(ticket)
          return yield* exit
        }
        const response = exit.value
        const refusedFor = yield* refusal(response)
        yield* gate.answered(ticket, { headers: response.headers, refusedForMillis: refusedFor })
        return refusedFor === undefined ? response : yield* attempt
      }
    )
    return attempt
  })

/** How long the platform asks to wait when it refused the request before acting on it, else `undefined`. */
const refusal = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<number | undefined> => {
  if (response.status !== 429 && response.status !== 503) return Effect.succeed(undefined)
  return Effect.flatMap(Effect.orElseSucceed(response.text, () => ""), (text) => {
    const json = Either.getOrUndefined(parseJson(text))
    // A 503 is a refusal only when it is the token store's "retry shortly"; a busy peer behind the proxy is not.
    if (response.status === 503 && field(json, "code") !== "platform_unavailable") return Effect.succeed(undefined)
    return Effect.map(retryAfterMillis(response.headers, json), (millis) => millis ?? DEFAULT_REFUSAL_MILLIS)
  })
}

const waitedTooLong = (request: HttpClientRequest.HttpClientRequest, maxWait: Duration.Duration | undefined) =>
  new HttpClientError.RequestError({
    request,
    reason: "Transport",
    cause: codedError(
      RATE_LIMIT_WAIT_CODE,
      `no place under the platform's rate limit within ${maxWait === undefined ? "the wait" : Duration.format(maxWait)}`
    )
  })
