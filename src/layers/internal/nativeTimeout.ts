/**
 * Request timeouts enforced by undici's own timers instead of `Effect.timeoutFail`, for
 * clients built by `NodeHttpClientPooled`.
 *
 * Why: `Effect.timeoutFail` races two fibers per request (about 55 run-loop steps, two
 * fibers started and joined), and the live stack makes five requests per delegation. In two
 * runs of `npm run bench` at N = 10,000 with the concurrency bound, the library made 384 and
 * 406 delegations/s with undici's timers, 262 and 270 with an `Effect.timeoutFail` per
 * request: 47 % and 50 % more (bench/README.md, "Request timeouts").
 *
 * How: `NodeHttpClientPooled.make` registers, for the client it returns, how to make a
 * variant of it whose requests carry undici's `headersTimeout`/`bodyTimeout`. The live
 * layers ask for such a variant once, when they are built; any other client (a pooled
 * client transformed by the host included) gets `Effect.timeoutFail`. Nothing here
 * depends on how Effect works inside.
 *
 * What differs from an Effect timeout: undici starts the clock when the request is written
 * to a socket (time spent waiting for a free socket in the pool is not counted), the body
 * bound is the longest silence between two chunks, and its timers for bounds over 1 s
 * tick every half second. So only bounds of 2 s and more are left to it.
 *
 * @internal
 */
import type { HttpClient } from "@effect/platform"
import { Duration } from "effect"

const boundedVariants = new WeakMap<HttpClient.HttpClient, (timeout: Duration.Duration) => HttpClient.HttpClient>()

// The shortest bound left to undici's timers.
const MIN_NATIVE_TIMEOUT = Duration.seconds(2)

/**
 * Records how to bound `client`'s requests natively; returns `client`.
 *
 * @internal
 */
export const registerBoundedVariant = (
  client: HttpClient.HttpClient,
  bounded: (timeout: Duration.Duration) => HttpClient.HttpClient
): HttpClient.HttpClient => {
  boundedVariants.set(client, bounded)
  return client
}

/**
 * A variant of `client` that fails a request with a transport `RequestError` once `timeout`
 * has passed without an answer, or `undefined` when the bound is left to an Effect timeout.
 *
 * @internal
 */
export const boundedVariant = (
  client: HttpClient.HttpClient,
  timeout: Duration.Duration
): HttpClient.HttpClient | undefined => {
  if (Duration.lessThan(timeout, MIN_NATIVE_TIMEOUT)) return undefined
  return boundedVariants.get(client)?.(timeout)
}
