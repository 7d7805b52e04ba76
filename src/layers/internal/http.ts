/**
 * Shared pieces of the live HTTP layers: platform requests, error texts,
 * `Retry-After`, and the classification of transport failures.
 *
 * @internal
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Clock, Effect, Either, Option, Redacted } from "effect"
import { isDotSegment } from "../../internal/dotSegment.js"
import { excerpt } from "../../internal/text.js"
import type { Bounds } from "../../services/RequestBounds.js"
import { RequestBounds } from "../../services/RequestBounds.js"
import { DEADLINE_CODE, TOO_LARGE_CODE } from "./nativeBounds.js"

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
 * The headers every platform call carries: the bearer and the org header. Peer calls never get
 * them, so the bearer never reaches a peer.
 *
 * @internal
 */
export const platformHeaders = (settings: PlatformSettings): Readonly<Record<string, string>> => {
  const headers: Record<string, string> = {}
  if (Option.isSome(settings.platformToken)) headers["authorization"] = `Bearer ${Redacted.value(settings.platformToken.value)}`
  if (Option.isSome(settings.orgId)) headers["x-molecule-org-id"] = settings.orgId.value
  return headers
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
 * Sends requests and reads their bodies as text, each request and its body bounded together by
 * `bounds` (provided as `RequestBounds`; the client is one `boundedClient` made): past a bound,
 * the request is aborted and fails with `onTimeout()` or `onTooLarge()`.
 *
 * @internal
 */
export const textWithin = (client: HttpClient.HttpClient, bounds: Bounds): TextWithin =>
<A, E, E2>(
  request: HttpClientRequest.HttpClientRequest,
  handle: (response: HttpClientResponse.HttpClientResponse, text: string) => Effect.Effect<A, E>,
  on: OnBounds<E2>
): Effect.Effect<A, E | E2 | HttpClientError.HttpClientError> =>
  Effect.flatMap(client.execute(request), (response) => Effect.flatMap(response.text, (text) => handle(response, text))).pipe(
    Effect.catchIf(isBound(TOO_LARGE_CODE), (error) => Effect.fail(on.onTooLarge(bounds.maxBytes, statusOf(error)))),
    Effect.catchIf(isBound(DEADLINE_CODE), () => Effect.fail(on.onTimeout())),
    Effect.provideService(RequestBounds, bounds)
  )

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

// The failures of a bounded request, by the code of their cause.
const isBound = (code: string) => (error: unknown): error is HttpClientError.HttpClientError =>
  isRecord(error) && (error["_tag"] === "RequestError" || error["_tag"] === "ResponseError") &&
  codeOf(error["cause"]).code === code

const statusOf = (error: HttpClientError.HttpClientError): number =>
  error._tag === "ResponseError" ? error.response.status : 0

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
