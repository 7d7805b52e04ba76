/**
 * Server-Sent Events from a response body, for the streaming A2A methods: the bytes counted against
 * the response size limit, decoded as UTF-8 across chunks, and split into events by
 * `@effect/experimental`'s SSE parser.
 *
 * @internal
 */
import * as Sse from "@effect/experimental/Sse"
import { Effect, Stream } from "effect"

/**
 * An SSE event: its `event` name (`message` unless the server named it) and its `data`.
 *
 * @internal
 */
export type SseEvent = Sse.Event

/**
 * The body's bytes, failing with `onTooLarge()` as soon as more than `maxBytes` have arrived (the
 * consumer stops there, which closes the connection).
 *
 * @internal
 */
export const boundedBytes = <E, E2>(
  body: Stream.Stream<Uint8Array, E>,
  maxBytes: number,
  onTooLarge: () => E2
): Stream.Stream<Uint8Array, E | E2> =>
  Stream.mapAccumEffect(body, 0, (received, chunk) => {
    const total = received + chunk.length
    return total > maxBytes ? Effect.fail(onTooLarge()) : Effect.succeed([total, chunk] as const)
  })

/**
 * The SSE events of a UTF-8 byte stream. The parser is `Sse.makeParser` (one per run of the
 * stream); `retry:` fields are ignored (reconnecting is the caller's decision), and an event larger
 * than `maxEventSize` characters fails with `onTooLarge()`.
 *
 * @internal
 */
export const sseEvents = <E, E2>(
  bytes: Stream.Stream<Uint8Array, E>,
  maxEventSize: number,
  onTooLarge: () => E2
): Stream.Stream<SseEvent, E | E2> =>
  Stream.suspend(() => {
    let parsed: Array<SseEvent> = []
    const parser = Sse.makeParser((event) => {
      if (event._tag === "Event") parsed.push(event)
    }, { maxEventSize })
    return Stream.mapConcatEffect(Stream.decodeText(bytes), (text) => {
      const error = parser.feed(text)
      const events = parsed
      parsed = []
      return error === undefined ? Effect.succeed(events) : Effect.fail(onTooLarge())
    })
  })
