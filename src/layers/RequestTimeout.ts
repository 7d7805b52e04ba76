/**
 * Per-request timeouts that an `HttpClient` can enforce natively.
 *
 * The live layers bound every request (`DELEGATION_TIMEOUT`, the mirror's 10 s).
 * An Effect timeout costs a race of two fibers per request. A client that can
 * enforce a timeout itself (undici's `headersTimeout`/`bodyTimeout`) provides
 * `NativeRequestTimeout`: the layers then ask it, once when they are built, for a
 * variant of the client with their bound, and add no timer per request. Such a
 * client reports an expired timeout as a transport `RequestError`.
 *
 * @since 0.1.0
 */
import type { HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import { Context, Effect, Option } from "effect"
import type { Duration } from "effect"

/**
 * Provided next to an `HttpClient` that can bound requests itself.
 *
 * @since 0.1.0
 * @category tags
 */
export class NativeRequestTimeout extends Context.Tag("effect-a2a-delegation/NativeRequestTimeout")<
  NativeRequestTimeout,
  {
    /**
     * The same client, failing a request with a transport error once `timeout` has
     * passed; `undefined` when it cannot bound that precisely (an Effect timeout is used).
     */
    readonly withTimeout: (timeout: Duration.Duration) => HttpClient.HttpClient | undefined
  }
>() {}

/**
 * Sends a request and handles its response within a bound.
 *
 * @since 0.1.0
 * @category models
 */
export type BoundedExecute = <A, E, E2>(
  request: HttpClientRequest.HttpClientRequest,
  handle: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, E>,
  onTimeout: (request: HttpClientRequest.HttpClientRequest) => E2
) => Effect.Effect<A, E | E2 | HttpClientError.HttpClientError>

/**
 * Runs requests and their response handling within `timeout`: through a natively
 * bounded client when the context has one (decided once, here), with an Effect
 * timeout that fails with `onTimeout(request)` otherwise.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeBounded = (client: HttpClient.HttpClient, timeout: Duration.Duration): Effect.Effect<BoundedExecute> =>
  Effect.map(Effect.serviceOption(NativeRequestTimeout), (native): BoundedExecute => {
    const bounded = Option.flatMap(native, ({ withTimeout }) => Option.fromNullable(withTimeout(timeout)))
    return Option.match(bounded, {
      onNone: () => (request, handle, onTimeout) =>
        Effect.timeoutFail(Effect.flatMap(client.execute(request), handle), {
          duration: timeout,
          onTimeout: () => onTimeout(request)
        }),
      onSome: (boundedClient) => (request, handle) => Effect.flatMap(boundedClient.execute(request), handle)
    })
  })
