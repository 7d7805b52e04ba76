/**
 * Keeping short texts cut from long ones without keeping the long ones.
 *
 * @internal
 */

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * A copy of `text` that shares no memory with the string it was cut from: a slice (or a trim) of
 * a 20 MB body is a view that keeps all 20 MB alive for as long as whatever holds the slice.
 *
 * @internal
 */
export const detached = (text: string): string => (text.length === 0 ? "" : decoder.decode(encoder.encode(text)))

/**
 * At most `max` characters of `text` (then `...`), detached from it.
 *
 * @internal
 */
export const excerpt = (text: string, max: number): string =>
  text.length > max ? `${detached(text.slice(0, max))}...` : detached(text)
