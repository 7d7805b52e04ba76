/**
 * Request bounds (a total deadline and a response size limit) enforced inside the client
 * for clients built by `NodeHttpClientPooled`, instead of by `Effect.timeoutFail` and a
 * counting stream around it.
 *
 * Why: `Effect.timeoutFail` races two fibers per request (two fibers started and joined),
 * and the live stack makes five requests per delegation. In two
 * runs of `npm run bench` at N = 10,000 with the concurrency bound, the library made 384 and
 * 406 delegations/s with timers in the client, 262 and 270 with an `Effect.timeoutFail` per
 * request: 47 % and 50 % more; in a later run on a quiet VM, 468 against 327: 43 % more
 * (bench/README.md, "Request timeouts").
 *
 * How: `NodeHttpClientPooled.make` registers, for the client it returns, how to make a
 * variant of it whose requests carry the bounds: one `setTimeout` per request from its start
 * (waiting for a socket, headers and body all count; the body is not an idle timer that a
 * drip-fed reply keeps restarting), and a byte count that aborts the request past the limit
 * without buffering the rest. The live layers ask for such a variant once, when they are
 * built; any other client (a pooled client transformed by the host included) gets
 * `Effect.timeoutFail` and a bounded read. Nothing here depends on how Effect works inside.
 *
 * @internal
 */
import type { HttpClient } from "@effect/platform"
import { Duration } from "effect"

/**
 * What one request may take.
 *
 * @internal
 */
export interface Bounds {
  /** From the start of the request to the last byte of its body. */
  readonly timeout: Duration.Duration
  /** Bytes of response body read at most. */
  readonly maxBytes: number
}

/**
 * The `code` of the error a bounded request fails with when its deadline passes.
 *
 * @internal
 */
export const DEADLINE_CODE = "EA2A_REQUEST_DEADLINE"

/**
 * The `code` of the error a bounded request fails with when its body passes the size limit.
 *
 * @internal
 */
export const TOO_LARGE_CODE = "EA2A_RESPONSE_TOO_LARGE"

/**
 * An `Error` with a `code`, as Node's own errors carry one.
 *
 * @internal
 */
export const codedError = (code: string, message: string): Error => Object.assign(new Error(message), { code })

const boundedVariants = new WeakMap<HttpClient.HttpClient, (bounds: Bounds) => HttpClient.HttpClient>()

// Tests drive short bounds with the TestClock, which a timer inside the client does not follow.
const MIN_NATIVE_TIMEOUT = Duration.seconds(2)

/**
 * Records how to bound `client`'s requests natively; returns `client`.
 *
 * @internal
 */
export const registerBoundedVariant = (
  client: HttpClient.HttpClient,
  bounded: (bounds: Bounds) => HttpClient.HttpClient
): HttpClient.HttpClient => {
  boundedVariants.set(client, bounded)
  return client
}

/**
 * A variant of `client` that fails a request past `bounds` (with an error whose cause has
 * `DEADLINE_CODE` or `TOO_LARGE_CODE`), or `undefined` when the bounds are left to Effect.
 *
 * @internal
 */
export const boundedVariant = (client: HttpClient.HttpClient, bounds: Bounds): HttpClient.HttpClient | undefined => {
  if (Duration.lessThan(bounds.timeout, MIN_NATIVE_TIMEOUT)) return undefined
  return boundedVariants.get(client)?.(bounds)
}
