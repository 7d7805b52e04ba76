/**
 * The per-peer choice of A2A version (`A2A_PROTOCOL`), shared by the transports.
 *
 * Pinned, every peer gets the pinned version at its discovered URL. In `auto`, a peer
 * behind the platform's proxy (`PeerEndpoint.viaPlatform`) gets 0.3, never switched: the
 * proxy forwards no `A2A-Version` header, so a 1.0 request would reach the peer as 0.3,
 * and a request it queues is delivered later exactly as it was sent. For a direct peer
 * the choice is an Effect `Cache` keyed by the peer's URL, built once per transport
 * layer: the first lookup reads the peer's agent card, later ones are cache hits
 * until the entry's time to live has passed (on the `Clock`, so `TestClock` drives it).
 * Concurrent first lookups of a peer share one card read. A version learned from a
 * peer's answer replaces the entry (and its time to live starts again).
 *
 * @since 0.2.0
 */
import { Cache, Duration, Effect } from "effect"
import type { CardProtocol, ProtocolSetting, ProtocolVersion } from "./A2A.js"
import type { PeerProtocol } from "./A2ATransport.js"
import type { PeerEndpoint } from "./Discovery.js"

/**
 * How the choice is made and how long it is kept.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProtocolOptions {
  readonly setting: ProtocolSetting
  /** What the peer's agent card says, for a discovered URL; `undefined` when it has none or it does not say. */
  readonly readCard: (url: string) => Effect.Effect<CardProtocol | undefined>
  /** Peers remembered at once (least recently used go first). */
  readonly capacity: number
  /** How long a peer's version is kept before its card is read again. */
  readonly timeToLive: Duration.DurationInput
}

/**
 * The two transport operations that depend on the choice.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProtocolChoice {
  readonly protocolFor: (endpoint: PeerEndpoint) => Effect.Effect<PeerProtocol>
  readonly rememberProtocol: (endpoint: PeerEndpoint, protocol: PeerProtocol) => Effect.Effect<void>
}

/**
 * Peers remembered by default.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_CAPACITY = 1000

/**
 * How long a peer's version is kept by default (the SDK servers' card `max-age`).
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_TIME_TO_LIVE: Duration.Duration = Duration.hours(1)

/**
 * The other version, for the fallback.
 *
 * @since 0.2.0
 * @category utils
 */
export const otherVersion = (version: ProtocolVersion): ProtocolVersion => (version === "1.0" ? "0.3" : "1.0")

/**
 * True when a version answer to this choice may be answered by switching version:
 * only a guess or a learned version, never a pinned one, the card's or the proxy's.
 *
 * @since 0.2.0
 * @category utils
 */
export const canFallBack = (protocol: PeerProtocol): boolean =>
  protocol.source === "guess" || protocol.source === "learned"

const guess = (url: string): PeerProtocol => ({ version: "1.0", url, source: "guess" })

// `streaming` only when the card says so (unknown counts as no).
const fromCard = (url: string, card: CardProtocol | undefined): PeerProtocol =>
  card === undefined
    ? guess(url)
    : { version: card.version, url: card.url ?? url, source: "card", ...(card.streaming === true ? { streaming: true } : {}) }

// A body the proxy queues is delivered later as it was sent, so no version answer can correct it then.
const throughProxy = (url: string): PeerProtocol => ({ version: "0.3", url, source: "proxy" })

const pinned = (version: ProtocolVersion): ProtocolChoice => ({
  protocolFor: (endpoint) => Effect.succeed({ version, url: endpoint.url, source: "pinned" }),
  rememberProtocol: () => Effect.void
})

/**
 * Builds the choice; in `auto`, its caches live as long as the transport built with it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeProtocolChoice = (options: ProtocolOptions): Effect.Effect<ProtocolChoice> => {
  if (options.setting !== "auto") return Effect.succeed(pinned(options.setting))
  const { capacity, timeToLive } = options
  return Effect.map(
    // Keyed by URL (a string key keeps the hit cheap: this runs once per delegation).
    Cache.make({ capacity, timeToLive, lookup: (url: string) => Effect.map(options.readCard(url), (card) => fromCard(url, card)) }),
    (direct): ProtocolChoice => ({
      protocolFor: (endpoint) =>
        endpoint.viaPlatform === true ? Effect.succeed(throughProxy(endpoint.url)) : direct.get(endpoint.url),
      // Nothing is learned through the proxy: its version is never switched.
      rememberProtocol: (endpoint, protocol) =>
        endpoint.viaPlatform === true
          ? Effect.void
          : direct.set(endpoint.url, {
            version: protocol.version,
            url: protocol.url,
            source: "learned",
            // What the card said about streaming stays true of the peer.
            ...(protocol.streaming === true ? { streaming: true } : {})
          })
    })
  )
}
