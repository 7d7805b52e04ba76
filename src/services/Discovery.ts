/**
 * Finds where a peer workspace listens for A2A.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

/**
 * A discovered peer: its A2A JSON-RPC endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export class PeerEndpoint extends Schema.Class<PeerEndpoint>("effect-a2a-delegation/PeerEndpoint")({
  id: Schema.String,
  url: Schema.String,
  name: Schema.optional(Schema.String),
  /**
   * The URL is the platform's A2A proxy (`/workspaces/{id}/a2a`), not the peer itself: the
   * transport then sends this workspace's platform credentials, which a peer never receives.
   */
  viaPlatform: Schema.optional(Schema.Boolean)
}) {}

/**
 * Discovery did not yield a usable peer URL.
 *
 * @since 0.1.0
 * @category errors
 */
export class DiscoveryError extends Schema.TaggedError<DiscoveryError>("effect-a2a-delegation/DiscoveryError")(
  "DiscoveryError",
  {
    workspaceId: Schema.String,
    reason: Schema.Literal(
      "Status",
      "NoUrl",
      "InvalidUrl",
      "InvalidPlatformUrl",
      "Transport",
      "Decode",
      "InvalidWorkspaceId",
      "TooLarge",
      "RateLimited"
    ),
    status: Schema.optional(Schema.Int),
    detail: Schema.String,
    /** What failed underneath, e.g. the `HttpClientError` of a `Transport` failure. */
    cause: Schema.optional(Schema.Defect)
  }
) {
  override get message(): string {
    switch (this.reason) {
      case "Status":
        return `Discovery failed: HTTP ${this.status ?? 0}${this.detail === "" ? "" : ` (${this.detail})`}`
      case "NoUrl":
        return `No URL for workspace ${this.workspaceId}`
      case "InvalidUrl":
        return `Discovery failed: peer URL is not absolute http(s): ${JSON.stringify(this.detail)}`
      case "InvalidPlatformUrl":
        return `Discovery failed: the registry URL ${JSON.stringify(this.detail)} does not parse; check PLATFORM_URL`
      case "Transport":
        return `Discovery error: ${this.detail}`
      case "Decode":
        return `Discovery failed: unreadable reply (${this.detail})`
      case "TooLarge":
        return `Discovery failed: the reply is too large (${this.detail})`
      case "InvalidWorkspaceId":
        return `Discovery refused: ${JSON.stringify(this.workspaceId)} cannot be a URL path segment`
      case "RateLimited":
        return `Discovery waited too long: ${this.detail}`
    }
  }
}

/**
 * Resolves a workspace id to its A2A endpoint.
 *
 * @since 0.1.0
 * @category tags
 */
export class Discovery extends Context.Tag("effect-a2a-delegation/Discovery")<Discovery, {
  /** Looks the peer up; never retried by the delegation program. */
  readonly resolve: (workspaceId: string) => Effect.Effect<PeerEndpoint, DiscoveryError>
  /** Forgets what is kept about the peer (it may have moved), so its next `resolve` looks it up. Optional. */
  readonly invalidate?: ((workspaceId: string) => Effect.Effect<void>) | undefined
}>() {}

/**
 * True for an absolute `http:` or `https:` URL.
 *
 * @since 0.1.0
 * @category utils
 */
export const isHttpUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  const protocol = new URL(url).protocol
  return protocol === "http:" || protocol === "https:"
}

/**
 * The URL without its userinfo (`http://user:pass@host/` is `http://host/`); any other URL as is.
 * Credentials in a discovered URL are never sent, so they are dropped before it is stored or traced.
 *
 * @internal
 */
export const withoutUserinfo = (url: string): string => {
  if (!url.includes("@") || !URL.canParse(url)) return url
  const parsed = new URL(url)
  if (parsed.username === "" && parsed.password === "") return url
  parsed.username = ""
  parsed.password = ""
  return parsed.href
}
