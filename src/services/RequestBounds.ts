/**
 * Request bounds (a deadline and a response size limit) that travel with each request in the
 * fiber's `Context`, so that they reach the `HttpClient` however the host has wrapped it.
 *
 * The live layers provide `RequestBounds` around every request they make. A client that honours
 * them itself says so with `NativeRequestBounds` beside it (`NodeHttpClientPooled` does): it
 * starts the deadline when the request is written to a connection and fails past a bound with an
 * error whose cause has the `code` `EA2A_REQUEST_DEADLINE` or `EA2A_RESPONSE_TOO_LARGE`. Any other
 * client is bounded by the layers with Effect instead.
 *
 * @since 0.4.0
 */
import { Context } from "effect"
import type { Duration } from "effect"

/**
 * What one request may take.
 *
 * @since 0.4.0
 * @category models
 */
export interface Bounds {
  /** From the request's start on a connection to the last byte of its body. */
  readonly timeout: Duration.Duration
  /** Bytes of response body read at most. */
  readonly maxBytes: number
}

/**
 * The bounds of the requests made in this fiber (none by default).
 *
 * @since 0.4.0
 * @category tags
 */
export class RequestBounds extends Context.Reference<RequestBounds>()(
  "effect-a2a-delegation/RequestBounds",
  { defaultValue: (): Bounds | undefined => undefined }
) {}

/**
 * Provided beside an `HttpClient` that honours `RequestBounds` itself.
 *
 * @since 0.4.0
 * @category tags
 */
export class NativeRequestBounds extends Context.Tag("effect-a2a-delegation/NativeRequestBounds")<
  NativeRequestBounds,
  true
>() {}
