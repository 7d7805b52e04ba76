/**
 * A lean Node `HttpClient` for hosts that delegate at volume: undici with a
 * bounded connection pool per origin, so thousands of delegations in flight share
 * a few hundred keep-alive sockets instead of opening one each (no EMFILE).
 *
 * It implements the `HttpClient` interface directly over `dispatcher.dispatch`
 * with a response handler (no Readable stream, promise or AbortController per
 * request) and reads each (small, JSON) body in one go. An interrupted request is
 * aborted through undici's controller when the interrupted fiber ends (an
 * `Effect.timeout` or a race ends its fiber at once); a fiber that outlives its
 * interruption, in an uninterruptible region, leaves the request to finish or
 * time out. The library runs more than four times as many delegations per second
 * over it as over `NodeHttpClient.layerUndici` (see the README's performance
 * section). It makes no `http.client` span per request; the current span's W3C
 * `traceparent` is still sent on every request.
 *
 * Exported from `effect-a2a-delegation/node`; the core never picks a client.
 *
 * @since 0.1.0
 */
import {
  Cookies,
  Headers,
  HttpClient,
  HttpClientError,
  HttpClientResponse,
  HttpIncomingMessage,
  UrlParams
} from "@effect/platform"
import type { HttpBody, HttpClientRequest } from "@effect/platform"
import { NodeStream, Undici } from "@effect/platform-node"
import { Context, Duration, Effect, Either, Inspectable, Layer, Option, Stream, Tracer } from "effect"
import type { Fiber } from "effect"
import { isAtHand } from "./internal/http.js"
import { NativeRequestTimeout } from "./RequestTimeout.js"

/**
 * Pool settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Sockets per origin (platform, each peer); requests beyond wait for a free one. Default 256. */
  readonly connections?: number | undefined
  /** How long an idle keep-alive socket is kept. Default 10 seconds. */
  readonly keepAliveTimeout?: Duration.DurationInput | undefined
}

const encoder = new TextEncoder()

/** The shortest bound left to undici's own (coarse, ~1 s) timers. */
const MIN_NATIVE_TIMEOUT = Duration.seconds(2)

type RawHeaders = Readonly<Record<string, string | Array<string> | undefined>>

/** A response whose body has been read as text already. */
class TextResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpIncomingMessage.TypeId]: HttpIncomingMessage.TypeId = HttpIncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId
  readonly text: Effect.Effect<string, HttpClientError.ResponseError>

  constructor(
    readonly request: HttpClientRequest.HttpClientRequest,
    readonly status: number,
    private readonly rawHeaders: RawHeaders,
    private readonly body: string
  ) {
    super()
    this.text = Effect.succeed(body)
  }

  get headers(): Headers.Headers {
    const out: Record<string, string> = {}
    for (const name in this.rawHeaders) {
      const value = this.rawHeaders[name]
      if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value
    }
    return Headers.fromInput(out)
  }

  get cookies(): Cookies.Cookies {
    const header = this.rawHeaders["set-cookie"]
    return header === undefined ? Cookies.empty : Cookies.fromSetCookie(Array.isArray(header) ? header : [header])
  }

  get remoteAddress(): Option.Option<string> {
    return Option.none()
  }

  get stream(): Stream.Stream<Uint8Array, HttpClientError.ResponseError> {
    return Stream.succeed(encoder.encode(this.body))
  }

  private decodeError(cause: unknown) {
    return new HttpClientError.ResponseError({ request: this.request, response: this, reason: "Decode", cause })
  }

  get json(): Effect.Effect<unknown, HttpClientError.ResponseError> {
    return Effect.try({
      try: () => (this.body === "" ? null : JSON.parse(this.body) as unknown),
      catch: (cause) => this.decodeError(cause)
    })
  }

  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.ResponseError> {
    return Effect.try({
      try: () => UrlParams.fromInput(new URLSearchParams(this.body)),
      catch: (cause) => this.decodeError(cause)
    })
  }

  get formData(): Effect.Effect<FormData, HttpClientError.ResponseError> {
    return Effect.tryPromise({
      try: () => new Response(this.body, { headers: this.headers }).formData(),
      catch: (cause) => this.decodeError(cause)
    })
  }

  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> {
    return Effect.sync(() => {
      const bytes = encoder.encode(this.body)
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
    })
  }

  override toJSON(): unknown {
    return { _id: "@effect/platform/HttpClientResponse", status: this.status, headers: this.rawHeaders }
  }
}

type UndiciBody = Exclude<Undici.Dispatcher.DispatchOptions["body"], undefined>

// undici encodes only its own FormData class as multipart; the global one (Node's bundled copy) is copied over.
const undiciFormData = (form: FormData): Undici.FormData => {
  if (form instanceof Undici.FormData) return form
  const copy = new Undici.FormData()
  form.forEach((value, name) => {
    if (typeof value === "string") copy.append(name, value)
    else copy.append(name, value, value.name)
  })
  return copy
}

// Every body but a stream is at hand already: no Effect step for those (this is a hot path).
const bodyOf = (body: Exclude<HttpBody.HttpBody, HttpBody.Stream>): UndiciBody => {
  switch (body._tag) {
    case "Empty":
      return null
    case "Uint8Array":
    case "Raw":
      return body.body as Uint8Array
    case "FormData":
      return undiciFormData(body.formData)
  }
}

/**
 * Collects one response for a fiber waiting in `Effect.async`. A dispatch handler
 * instead of undici's `request()` spares a Readable stream, a promise and an
 * AbortController per request. It watches the waiting fiber: if the fiber ends
 * before the response, it was interrupted, and the request is aborted.
 */
class ResponseHandler implements Undici.Dispatcher.DispatchHandler {
  private controller: Undici.Dispatcher.DispatchController | undefined
  private status = 0
  private headers: RawHeaders = {}
  private readonly chunks: Array<Buffer> = []
  private done = false

  constructor(
    private readonly request: HttpClientRequest.HttpClientRequest,
    private readonly fiber: Fiber.RuntimeFiber<unknown, unknown>,
    private readonly resume: (effect: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>) => void
  ) {
    fiber.addObserver(this.abandoned)
  }

  onRequestStart(controller: Undici.Dispatcher.DispatchController): void {
    if (this.done) controller.abort(new Error("request interrupted"))
    else this.controller = controller
  }

  onResponseStart(_: Undici.Dispatcher.DispatchController, status: number, headers: RawHeaders): void {
    this.status = status
    this.headers = headers
  }

  onResponseData(_: Undici.Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk)
  }

  onResponseEnd(): void {
    if (this.done) return
    this.finish()
    const chunks = this.chunks
    const text = chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")
    this.resume(Effect.succeed(new TextResponse(this.request, this.status, this.headers, text)))
  }

  onResponseError(_: Undici.Dispatcher.DispatchController | null, cause: Error): void {
    if (this.done) return
    this.finish()
    this.resume(Effect.fail(new HttpClientError.RequestError({ request: this.request, reason: "Transport", cause })))
  }

  private finish(): void {
    this.done = true
    this.fiber.removeObserver(this.abandoned)
  }

  /** The waiting fiber ended first: it was interrupted, so the request is aborted. */
  private readonly abandoned = () => {
    if (this.done) return
    this.done = true
    this.controller?.abort(new Error("request interrupted"))
  }
}

// `http://host:port/path?query` splits without a URL object (a hot path); anything else goes through URL.
const SIMPLE_URL = /^https?:\/\/[a-z0-9.:[\]-]+(?:\/[!-"$-~]*)?$/

interface Target {
  readonly origin: string
  readonly path: string
}

const splitUrl = (request: HttpClientRequest.HttpClientRequest): Target | Error => {
  const url = request.url
  if (request.urlParams.length === 0 && Option.isNone(request.hash) && SIMPLE_URL.test(url)) {
    const slash = url.indexOf("/", url.indexOf("//") + 2)
    return slash === -1 ? { origin: url, path: "/" } : { origin: url.slice(0, slash), path: url.slice(slash) }
  }
  return Either.match(UrlParams.makeUrl(url, request.urlParams, request.hash), {
    onLeft: (error): Target | Error => error,
    onRight: (parsed) => ({ origin: parsed.origin, path: parsed.pathname + parsed.search })
  })
}

const traceparent = (span: Tracer.AnySpan): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

/**
 * An `HttpClient` over an undici dispatcher.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  dispatcher: Undici.Dispatcher,
  // A per-request bound enforced by undici's own timers instead of a fiber race.
  timeout?: Duration.Duration | undefined
): HttpClient.HttpClient => {
  // null leaves undici's own defaults in place.
  const millis = timeout === undefined ? null : Duration.toMillis(timeout)
  return makeClient(dispatcher, { headersTimeout: millis, bodyTimeout: millis })
}

const makeClient = (
  dispatcher: Undici.Dispatcher,
  timeouts: { readonly headersTimeout: number | null; readonly bodyTimeout: number | null }
): HttpClient.HttpClient => {
  // No canceller: `Effect.async` would wrap each wait in an `onInterrupt` (about nine run-loop steps per
  // request). An interrupted fiber ends without waiting here, and its end aborts the request.
  const send = (
    request: HttpClientRequest.HttpClientRequest,
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    options: Undici.Dispatcher.DispatchOptions
  ) =>
    Effect.async<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>((resume) => {
      dispatcher.dispatch(options, new ResponseHandler(request, fiber, resume))
    })

  const dispatchOptions = (
    target: Target,
    request: HttpClientRequest.HttpClientRequest,
    headers: Array<string>,
    body: UndiciBody
  ): Undici.Dispatcher.DispatchOptions => ({
    origin: target.origin,
    path: target.path,
    method: request.method,
    headers,
    body,
    headersTimeout: timeouts.headersTimeout,
    bodyTimeout: timeouts.bodyTimeout
  })

  const execute = (request: HttpClientRequest.HttpClientRequest) =>
    Effect.withFiberRuntime<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>((fiber) => {
      const target = splitUrl(request)
      if (target instanceof Error) {
        return Effect.fail(new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause: target }))
      }
      // undici takes headers as a flat [name, value, ...] list, which costs one array and no object shape.
      const headers: Array<string> = []
      for (const name in request.headers) headers.push(name, request.headers[name]!)
      const span = Context.getOrElse(fiber.currentContext, Tracer.ParentSpan, () => undefined)
      if (span !== undefined) headers.push("traceparent", traceparent(span))
      return request.body._tag === "Stream"
        ? Effect.flatMap(
          NodeStream.toReadable(request.body.stream),
          (readable) => send(request, fiber, dispatchOptions(target, request, headers, readable))
        )
        : send(request, fiber, dispatchOptions(target, request, headers, bodyOf(request.body)))
    })

  return HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
    // A request already at hand (no `mapRequestEffect` before this client) skips a step.
    (effect) => (isAtHand(effect) ? execute(effect.value) : Effect.flatMap(effect, execute)),
    Effect.succeed
  )
}

/**
 * The lean client over its own bounded undici `Agent`, destroyed with the layer. It also
 * provides `NativeRequestTimeout`: it enforces the library's per-request timeouts itself.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<HttpClient.HttpClient | NativeRequestTimeout> =>
  Layer.scopedContext(
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() =>
          new Undici.Agent({
            connections: options.connections ?? 256,
            keepAliveTimeout: Duration.toMillis(options.keepAliveTimeout ?? "10 seconds")
          })
        ),
        (agent) => Effect.promise(() => agent.destroy())
      ),
      (agent) =>
        Context.make(HttpClient.HttpClient, make(agent)).pipe(
          Context.add(NativeRequestTimeout, {
            // undici's timers tick twice a second with one-second resolution: shorter bounds need an Effect timer.
            withTimeout: (timeout) => Duration.lessThan(timeout, MIN_NATIVE_TIMEOUT) ? undefined : make(agent, timeout)
          })
        )
    )
  )
