/**
 * Random UUIDs (version 4) drawn from Effect's `Random` service, so a seeded `Random`
 * (or `TestRandom`) makes them reproducible.
 *
 * @internal
 */
import { Effect, Random } from "effect"

/** 32 random bits. */
const word = Random.nextIntBetween(0, 0x1_0000_0000)

const hex = (value: number, digits: number): string => value.toString(16).padStart(digits, "0")

/**
 * A UUID v4 (RFC 9562): 122 random bits, the version nibble 4 and the variant bits 10.
 *
 * @internal
 */
export const uuidV4: Effect.Effect<string> = Effect.gen(function*() {
  const a = yield* word
  const b = yield* word
  const c = yield* word
  const d = yield* word
  const version = 0x4000 | (b & 0x0fff)
  const variant = 0x8000 | ((c >>> 16) & 0x3fff)
  return `${hex(a, 8)}-${hex(b >>> 16, 4)}-${hex(version, 4)}-${hex(variant, 4)}-${hex(c & 0xffff, 4)}${hex(d, 8)}`
})
