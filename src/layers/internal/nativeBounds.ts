/**
 * Request bounds (a deadline and a response size limit) that travel with the request in the
 * fiber's `Context`, so that they reach the client however the host has wrapped it.
 *
 * A client that honours them itself (`NodeHttpClientPooled`, which says so by providing
 * `NativeRequestBounds` beside its `HttpClient`) runs one timer per request from the moment the
 * request is written to a socket - waiting for a connection or for the platform's rate limit
 * does not count - and counts the body's bytes, aborting past the limit without buffering the
 * rest. Any other client is wrapped by `boundedClient`, which bounds the request and its body
 * with `Effect.timeoutFail` and a counting read, and hands the caller the body read within the
 * bounds. Both fail the same way (a `RequestError`/`ResponseError` whose cause has
 * `DEADLINE_CODE` or `TOO_LARGE_CODE`).
 *
 * Why not always Effect: `Effect.timeoutFail` races two fibers per request, and the live stack
 * makes several requests per delegation. In `npm run bench` at N = 10,000 the library made
 * 384 and 406 delegations/s with timers in the client, 262 and 270 with an `Effect.timeoutFail`
 * per request; on a quiet VM, 468 against 327: 43 % more (bench/README.md, "Request timeouts").
 *
 * @internal
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Duration, Effect, Option, Stream } from "effect"
import { RequestBounds } from "../../services/RequestBounds.js"

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

/**
 * `client` as the live layers use it: the client itself when it honours `RequestBounds` (`native`),
 * else each request and its body within the fiber's `RequestBounds` by Effect.
 *
 * @internal
 */
export const boundedClient = (client: HttpClient.HttpClient, native: boolean): HttpClient.HttpClient =>
  native ? client : boundedByEffect(client)

const boundedByEffect = (client: HttpClient.HttpClient): HttpClient.HttpClient =>
  HttpClient.transform(client, (execute, request) =>
    Effect.flatMap(RequestBounds, (bounds) => {
      if (bounds === undefined) return execute
      const read = Effect.flatMap(execute, (response) => readWithin(request, response, bounds.maxBytes))
      return Effect.timeoutFail(read, {
        duration: bounds.timeout,
        onTimeout: () =>
          new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: codedError(DEADLINE_CODE, `no complete answer within ${Duration.format(bounds.timeout)}`)
          })
      })
    }))

/**
 * The response with its body read (at most `maxBytes`), as a response whose body is that text. A
 * declared length is trusted to say it is too large at once; otherwise the body is streamed and
 * counted, and the stream's end aborts the request, so nothing past the limit is buffered.
 */
const readWithin = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.ResponseError> => {
  const tooLarge = () =>
    Effect.fail(
      new HttpClientError.ResponseError({
        request,
        response,
        reason: "Decode",
        cause: codedError(TOO_LARGE_CODE, `the response body is larger than ${maxBytes} bytes`)
      })
    )
  const declared = response.headers["content-length"]
  if (declared !== undefined && /^\d+$/.test(declared)) {
    // Too large: the stream's end aborts the request (a dropped response is only aborted once collected).
    if (Number(declared) > maxBytes) return Effect.zipRight(Stream.runDrain(Stream.take(response.stream, 1)), tooLarge())
    // Within the limit (the usual answer): read it now, within the bound; the response keeps the text.
    return Effect.as(response.text, response)
  }
  const bytes: Effect.Effect<Option.Option<Uint8Array>, HttpClientError.ResponseError> = Effect.map(
    Stream.runFoldWhile(
      response.stream,
      { received: 0, chunks: [] as Array<Uint8Array> },
      (read) => read.received <= maxBytes,
      (read, chunk) => {
        read.chunks.push(chunk)
        return { received: read.received + chunk.length, chunks: read.chunks }
      }
    ),
    ({ chunks, received }) => received > maxBytes ? Option.none() : Option.some(concat(chunks, received))
  )
  return Effect.flatMap(bytes, Option.match({
    onNone: tooLarge,
    onSome: (body) =>
      Effect.succeed(HttpClientResponse.fromWeb(
        request,
        new Response(response.status === 204 || response.status === 304 ? null : (body as Uint8Array<ArrayBuffer>), {
          status: response.status,
          headers: response.headers
        })
      ))
  }))
}

const concat = (chunks: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  if (chunks.length === 1) return chunks[0]!
  const bytes = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    bytes.set(chunk, offset)
    offset += chunk.length
  }
  return bytes
}
