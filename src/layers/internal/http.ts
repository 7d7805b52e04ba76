/**
 * Shared pieces of the live HTTP layers: platform requests, error texts,
 * `Retry-After`, and the classification of transport failures.
 *
 * @internal
 */
import type { HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import { HttpBody, HttpClientRequest } from "@effect/platform"
import { Clock, Duration, Effect, Either, Option, Random, Redacted, Schedule, Stream } from "effect"
import type { RateLimiter } from "effect"
import { excerpt } from "../../internal/text.js"
import { isDotSegment } from "../../programs/validate.js"
import type { Bounds } from "./nativeBounds.js"
import { boundedVariant, DEADLINE_CODE, TOO_LARGE_CODE } from "./nativeBounds.js"

/**
 * Where the platform is and who we are on it.
 *
 * @internal
 */
export interface PlatformSettings {
  readonly platformUrl: string
  readonly workspaceId: string
  readonly platformToken: Option.Option<Redacted.Redacted<string>>
  readonly orgId: Option.Option<string>
  /** True when `platformUrl` is the built-in default rather than a configured `PLATFORM_URL`. */
  readonly platformUrlIsDefault?: boolean | undefined
  /** Spaces the requests to the platform (`PLATFORM_RATE_LIMIT`); each attempt takes a place. */
  readonly pace?: RateLimiter.RateLimiter | undefined
}

/**
 * What to check when a platform call failed for what is most likely a configuration reason:
 * an unreachable platform names `PLATFORM_URL`, a 401 names `PLATFORM_TOKEN`. Empty otherwise.
 *
 * @internal
 */
export const platformHint = (settings: PlatformSettings, status?: number): string => {
  if (status === undefined) {
    return settings.platformUrlIsDefault === true
      ? `; PLATFORM_URL is not set, so the default ${settings.platformUrl} was used: set PLATFORM_URL`
      : `; check PLATFORM_URL (${settings.platformUrl})`
  }
  if (status === 401) {
    return Option.isNone(settings.platformToken)
      ? "; no PLATFORM_TOKEN is set: set it to this workspace's platform token"
      : "; the platform rejected PLATFORM_TOKEN: check it"
  }
  return ""
}

/**
 * Request builders for platform calls: base URL, bearer and org header. Peer
 * calls never use them, so the bearer never reaches a peer.
 *
 * @internal
 */
export interface PlatformRequests {
  /** The headers every platform call carries. */
  readonly headers: Readonly<Record<string, string>>
  readonly get: (path: string, extra?: Readonly<Record<string, string>>) => HttpClientRequest.HttpClientRequest
  readonly postJson: (
    path: string,
    body: unknown,
    extra?: Readonly<Record<string, string>>
  ) => HttpClientRequest.HttpClientRequest
}

/**
 * @internal
 */
export const platformRequests = (settings: PlatformSettings): PlatformRequests => {
  const base = settings.platformUrl.replace(/\/+$/, "")
  const headers: Record<string, string> = {}
  if (Option.isSome(settings.platformToken)) headers["authorization"] = `Bearer ${Redacted.value(settings.platformToken.value)}`
  if (Option.isSome(settings.orgId)) headers["x-molecule-org-id"] = settings.orgId.value
  const withExtra = (extra: Readonly<Record<string, string>> | undefined) =>
    extra === undefined ? headers : { ...headers, ...extra }
  return {
    headers,
    get: (path, extra) => HttpClientRequest.get(base + path, { headers: withExtra(extra) }),
    postJson: (path, body, extra) =>
      HttpClientRequest.post(base + path, { headers: withExtra(extra), body: HttpBody.unsafeJson(body) })
  }
}

/**
 * The largest response body read by default (`DELEGATION_MAX_RESPONSE_BYTES`): 10 MiB, the
 * platform proxy's own cap on replies.
 *
 * @internal
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024

/**
 * A path built from a template whose every interpolated value is one percent-encoded segment
 * (`/` and `?` included); a value that is a dot segment (`.`, `..`, which no encoding keeps
 * from being resolved away) or empty makes it `Left(value)`.
 *
 * @internal
 */
export const pathOf = (
  strings: TemplateStringsArray,
  ...values: ReadonlyArray<string>
): Either.Either<string, string> => {
  let path = strings[0] ?? ""
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!
    if (value === "" || isDotSegment(value)) return Either.left(value)
    path += encodeURIComponent(value) + (strings[i + 1] ?? "")
  }
  return Either.right(path)
}

/**
 * What a bounded request does when it passes a bound.
 *
 * @internal
 */
export interface OnBounds<E> {
  /** The request and its body took longer than the timeout. */
  readonly onTimeout: () => E
  /** The body is larger than the size limit (nothing past it was read); `status` is the response's. */
  readonly onTooLarge: (maxBytes: number, status: number) => E
}

/**
 * Sends requests and reads their bodies as text, each request and its body bounded
 * together by `timeout` and the body by `maxBytes`: past a bound, the request is aborted
 * and fails with `onTimeout()` or `onTooLarge()`. A `NodeHttpClientPooled` client enforces
 * the bounds inside the client instead (see ./nativeBounds.ts), failing the same way.
 *
 * @internal
 */
export const textWithin = (client: HttpClient.HttpClient, bounds: Bounds): TextWithin => {
  const native = boundedVariant(client, bounds)
  const { maxBytes, timeout } = bounds
  return <A, E, E2>(
    request: HttpClientRequest.HttpClientRequest,
    handle: (response: HttpClientResponse.HttpClientResponse, text: string) => Effect.Effect<A, E>,
    on: OnBounds<E2>
  ): Effect.Effect<A, E | E2 | HttpClientError.HttpClientError> => {
    if (native !== undefined) {
      const text = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<string, E2 | HttpClientError.HttpClientError> =>
        Effect.catchIf(response.text, isNative(TOO_LARGE_CODE), () => Effect.fail(on.onTooLarge(maxBytes, response.status)))
      const read: Effect.Effect<A, E | E2 | HttpClientError.HttpClientError> = Effect.flatMap(
        native.execute(request),
        (response) => Effect.flatMap(text(response), (body) => handle(response, body))
      )
      return Effect.catchIf(read, isNative(DEADLINE_CODE), () => Effect.fail(on.onTimeout()))
    }
    const read = Effect.flatMap(client.execute(request), (response) =>
      Effect.flatMap(
        boundedText(response, maxBytes),
        (text): Effect.Effect<A, E | E2> =>
          text === undefined ? Effect.fail(on.onTooLarge(maxBytes, response.status)) : handle(response, text)
      ))
    return Effect.timeoutFail(read, { duration: timeout, onTimeout: on.onTimeout })
  }
}

/**
 * A request sent and its body read as text within bounds, as `textWithin` makes it.
 *
 * @internal
 */
export type TextWithin = <A, E, E2>(
  request: HttpClientRequest.HttpClientRequest,
  handle: (response: HttpClientResponse.HttpClientResponse, text: string) => Effect.Effect<A, E>,
  on: OnBounds<E2>
) => Effect.Effect<A, E | E2 | HttpClientError.HttpClientError>

/**
 * Times a platform call is sent again while the platform asks to come back later.
 *
 * @internal
 */
export const PLATFORM_BUSY_RETRIES = 3

/**
 * The longest wait before sending a platform call again (a longer `Retry-After` is cut to it).
 *
 * @internal
 */
export const PLATFORM_BUSY_MAX_WAIT = Duration.seconds(30)

/** An answer of the platform that asks to be sent again later, with how long to wait. */
class PlatformBusy {
  readonly _tag = "PlatformBusy"
  constructor(
    readonly response: HttpClientResponse.HttpClientResponse,
    readonly text: string,
    readonly millis: number
  ) {}
}

const isPlatformBusy = (error: unknown): error is PlatformBusy => error instanceof PlatformBusy

// The wait before an attempt: Retry-After (or the body's retry_after), never less, and up to 1.2 times
// it so that the calls refused together do not come back together.
const waitBefore = (busy: PlatformBusy): Effect.Effect<Duration.Duration> =>
  Effect.map(Random.nextRange(1, 1.2), (factor) => Duration.millis(busy.millis * factor))
const laterRetries = Schedule.identity<unknown>().pipe(
  Schedule.addDelayEffect((error) => isPlatformBusy(error) ? waitBefore(error) : Effect.succeed(Duration.zero)),
  Schedule.intersect(Schedule.recurs(PLATFORM_BUSY_RETRIES - 1))
)

/**
 * `execute` for platform calls: while the platform answers 429 (its rate limit) or 503
 * `platform_unavailable` (its token store, "retry shortly"), the call is sent again after the
 * answer's `Retry-After` (1 s without one; up to 1.2 times it, jittered), up to
 * `PLATFORM_BUSY_RETRIES` times; the last such answer, or one asking for more than
 * `PLATFORM_BUSY_MAX_WAIT`, is then handled as any other. The platform refused those requests
 * before acting on them, so sending one again does nothing twice.
 */
const retryingWhilePlatformBusy = (execute: TextWithin): TextWithin =>
<A, E, E2>(
  request: HttpClientRequest.HttpClientRequest,
  handle: (response: HttpClientResponse.HttpClientResponse, text: string) => Effect.Effect<A, E>,
  on: OnBounds<E2>
): Effect.Effect<A, E | E2 | HttpClientError.HttpClientError> => {
  const checked = (response: HttpClientResponse.HttpClientResponse, text: string): Effect.Effect<A, E | PlatformBusy> => {
    if (response.status !== 429 && response.status !== 503) return handle(response, text)
    const json = Either.getOrUndefined(parseJson(text))
    if (response.status === 503 && field(json, "code") !== "platform_unavailable") return handle(response, text)
    return Effect.flatMap(retryAfterMillis(response.headers, json), (millis): Effect.Effect<A, E | PlatformBusy> => {
      const wait = millis ?? 1000
      // Coming back before the platform said would only be refused again: a longer wait is the answer.
      return wait > Duration.toMillis(PLATFORM_BUSY_MAX_WAIT)
        ? handle(response, text)
        : Effect.fail(new PlatformBusy(response, text, wait))
    })
  }
  const once = execute(request, checked, on)
  // The retry machinery is built only once the platform has asked to come back.
  return Effect.catchIf(once, isPlatformBusy, (first) =>
    Effect.zipRight(
      Effect.flatMap(waitBefore(first), Effect.sleep),
      Effect.retry(once, { schedule: laterRetries, while: isPlatformBusy })
    ).pipe(
      Effect.catchIf(isPlatformBusy, (last) => handle(last.response, last.text))
    ))
}

/**
 * `execute` with each request started only when `pace` (the host's limit on platform requests)
 * gives it a place; `execute` itself without one.
 *
 * @internal
 */
export const pacedBy = (pace: RateLimiter.RateLimiter | undefined, execute: TextWithin): TextWithin =>
  pace === undefined ? execute : (request, handle, on) => pace(execute(request, handle, on))

/**
 * How the live layers send a request to the platform's API: within `bounds`, paced by
 * `settings.pace`, and sent again while the platform asks to come back later.
 *
 * @internal
 */
export const platformTextWithin = (
  client: HttpClient.HttpClient,
  settings: PlatformSettings,
  bounds: Bounds
): TextWithin => retryingWhilePlatformBusy(pacedBy(settings.pace, textWithin(client, bounds)))

// The failures a bounded pooled client reports, by the code of their cause.
const isNative = (code: string) => (error: unknown): boolean =>
  isRecord(error) && (error["_tag"] === "RequestError" || error["_tag"] === "ResponseError") &&
  codeOf(error["cause"]).code === code

/**
 * The body as text, or `undefined` once it passes `maxBytes`. A declared length is trusted
 * to say so at once; otherwise the body is streamed and counted, and the stream's end
 * aborts the request, so nothing past the limit is buffered.
 */
const boundedText = (
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number
): Effect.Effect<string | undefined, HttpClientError.ResponseError> => {
  const declared = response.headers["content-length"]
  if (declared !== undefined && /^\d+$/.test(declared)) {
    // Too large: the stream's end aborts the request (a dropped response is only aborted once collected).
    return Number(declared) > maxBytes
      ? Effect.as(Stream.runDrain(Stream.take(response.stream, 1)), undefined)
      : response.text
  }
  return Stream.runFoldWhile(
    response.stream,
    { received: 0, chunks: [] as ReadonlyArray<Uint8Array> },
    (read) => read.received <= maxBytes,
    (read, chunk) => ({ received: read.received + chunk.length, chunks: [...read.chunks, chunk] })
  ).pipe(Effect.map(({ chunks, received }) => received > maxBytes ? undefined : decodeUtf8(chunks, received)))
}

const decodeUtf8 = (chunks: ReadonlyArray<Uint8Array>, length: number): string => {
  const bytes = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.length
  }
  return new TextDecoder().decode(bytes)
}

/**
 * Parses JSON text without throwing.
 *
 * @internal
 */
export const parseJson = (text: string): Either.Either<unknown, string> =>
  Either.try({ try: (): unknown => JSON.parse(text), catch: () => "body is not valid JSON" })

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Reads a field of a JSON object, if the value is an object.
 *
 * @internal
 */
export const field = (value: unknown, name: string): unknown => (isRecord(value) ? value[name] : undefined)

/**
 * The human-readable error of a non-2xx body: `{"error": "..."}`, a JSON-RPC
 * error's message, or the start of the raw text.
 *
 * @internal
 */
export const errorText = (text: string): string => {
  const json = parseJson(text)
  if (Either.isRight(json)) {
    const error = field(json.right, "error")
    if (typeof error === "string") return excerpt(error, ERROR_EXCERPT)
    const message = field(error, "message")
    if (typeof message === "string") return excerpt(message, ERROR_EXCERPT)
  }
  return excerpt(text.trim(), ERROR_EXCERPT)
}

/** Characters of a raw error body an error keeps. */
const ERROR_EXCERPT = 200

/**
 * `Retry-After` in milliseconds (delta-seconds or an HTTP date), else the
 * platform's `retry_after` body field (seconds).
 *
 * @internal
 */
export const retryAfterMillis = (
  headers: Readonly<Record<string, string>>,
  body: unknown
): Effect.Effect<number | undefined> =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const header = headers["retry-after"]
    if (header !== undefined) {
      const trimmed = header.trim()
      if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
      const date = Date.parse(trimmed)
      if (!Number.isNaN(date)) return Math.max(0, date - now)
    }
    const fromBody = field(body, "retry_after")
    return typeof fromBody === "number" && Number.isFinite(fromBody) && fromBody >= 0 ? fromBody * 1000 : undefined
  })

/**
 * How a request failed before an answer arrived.
 *
 * @internal
 */
export interface TransportFailure {
  readonly reason: "ConnectionRefused" | "ConnectionReset" | "Dns" | "Timeout" | "Network"
  readonly detail: string
}

const codeOf = (cause: unknown): { readonly code: string | undefined; readonly message: string | undefined } => {
  let current: unknown = cause
  let message: string | undefined
  for (let depth = 0; depth < 6 && current !== undefined && current !== null; depth++) {
    const code = field(current, "code")
    const text = current instanceof Error ? current.message : field(current, "message")
    if (message === undefined && typeof text === "string" && text !== "") message = text
    if (typeof code === "string") return { code, message: typeof text === "string" && text !== "" ? text : message }
    current = current instanceof Error ? current.cause : field(current, "cause")
  }
  return { code: undefined, message }
}

/**
 * Names a transport failure from the error codes Node, undici and fetch use.
 *
 * @internal
 */
export const describeTransport = (cause: unknown, fallback: string): TransportFailure => {
  const { code, message } = codeOf(cause)
  const raw = message ?? fallback
  switch (code) {
    case "ECONNREFUSED":
      return { reason: "ConnectionRefused", detail: `connection refused (${raw})` }
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
    case "UND_ERR_CLOSED":
      return { reason: "ConnectionReset", detail: `connection reset (${raw})` }
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return { reason: "Dns", detail: `DNS lookup failed (${raw})` }
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return { reason: "Timeout", detail: `timed out (${raw})` }
    default:
      return { reason: "Network", detail: code === undefined ? raw : `${raw} (${code})` }
  }
}

/**
 * The transport failure behind an `HttpClientError`, which it keeps as its cause.
 *
 * @internal
 */
export const fromHttpClientError = (
  error: HttpClientError.HttpClientError
): TransportFailure & { readonly cause: HttpClientError.HttpClientError } => ({
  ...describeTransport(error.cause, error.description ?? error.message),
  cause: error
})
