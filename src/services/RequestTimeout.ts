/**
 * Per-request timeouts that an `HttpClient` can enforce natively.
 *
 * The live layers bound every request (`DELEGATION_TIMEOUT`, the mirror's 10 s).
 * An Effect timeout costs a race of two fibers per request; a client that can
 * enforce a timeout itself (undici's `headersTimeout`/`bodyTimeout`) says so by
 * providing `NativeRequestTimeout`, and then reads the bound from
 * `currentRequestTimeout` instead, failing with a transport error when it expires.
 *
 * @since 0.1.0
 */
import { Context, Effect, FiberRef, Option } from "effect"
import type { Duration } from "effect"

/**
 * The timeout the library wants for the request being executed, if any.
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentRequestTimeout: FiberRef.FiberRef<Option.Option<Duration.Duration>> = FiberRef.unsafeMake(
  Option.none<Duration.Duration>()
)

/**
 * Provided next to an `HttpClient` that enforces `currentRequestTimeout` itself.
 *
 * @since 0.1.0
 * @category tags
 */
export class NativeRequestTimeout extends Context.Tag("effect-a2a-delegation/NativeRequestTimeout")<
  NativeRequestTimeout,
  { readonly enforced: true }
>() {}

/**
 * Bounds `self` by `duration`: through the client when it enforces timeouts
 * natively (its own transport error then reports the timeout), with an Effect
 * timeout failing with `onTimeout()` otherwise. Resolve `native` once, when the
 * layer is built.
 *
 * @since 0.1.0
 * @category combinators
 */
export const bounded = (native: boolean) =>
<E2>(duration: Duration.Duration, onTimeout: () => E2) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2, R> =>
  native
    ? Effect.locally(self, currentRequestTimeout, Option.some(duration))
    : Effect.timeoutFail(self, { duration, onTimeout })

/**
 * Whether the surrounding context has a natively enforcing client.
 *
 * @since 0.1.0
 * @category constructors
 */
export const isNative: Effect.Effect<boolean> = Effect.map(Effect.serviceOption(NativeRequestTimeout), Option.isSome)
