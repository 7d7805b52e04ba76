/**
 * What the soak and its server share: the faults, how often each is injected, and what each must
 * end as.
 */

/** Bytes of a huge reply (and of a huge error page). */
export const HUGE_BYTES = 20 * 1024 * 1024

/** How a delegation must end: its status, and for `failed` the tag of its cause (`*`: any). */
export type Expected =
  | { readonly status: "completed" | "queued" }
  | { readonly status: "failed"; readonly cause: string }
  | { readonly status: "rejected" }

/** One kind of fault: its share of the delegations (per 10,000) and the outcome it must have. */
export interface Fault {
  readonly name: string
  readonly per10k: number
  readonly expected: Expected
  /** The issue item the library fix for it belongs to, when the outcome depends on one. */
  readonly note?: string
}

const failed = (cause: string): Expected => ({ status: "failed", cause })

/** About 30% faults; `ok` is the rest. */
export const FAULTS: ReadonlyArray<Fault> = [
  { name: "reset", per10k: 300, expected: failed("A2ATransportError") },
  { name: "hang", per10k: 200, expected: failed("A2ATransportError") },
  { name: "status500", per10k: 250, expected: failed("A2AResponseError") },
  { name: "status503", per10k: 200, expected: failed("A2ATransportError") },
  { name: "flaky503", per10k: 300, expected: { status: "completed" } },
  { name: "retryAfterAbuse", per10k: 200, expected: { status: "completed" }, note: "Retry-After cap" },
  { name: "malformed", per10k: 200, expected: failed("A2AResponseError") },
  { name: "rpcError", per10k: 200, expected: failed("JsonRpcError") },
  { name: "queued", per10k: 200, expected: { status: "queued" } },
  { name: "redirect", per10k: 100, expected: failed("A2AResponseError") },
  { name: "drip", per10k: 100, expected: failed("A2ATransportError"), note: "total request deadline (lead)" },
  { name: "huge", per10k: 4, expected: failed("*"), note: "response size limit (lead)" },
  // A2AResponseError, or a Timeout when 20 MB take longer than DELEGATION_TIMEOUT to arrive.
  { name: "hugeError", per10k: 4, expected: failed("*") },
  { name: "outage", per10k: 200, expected: failed("DiscoveryError") },
  { name: "nonhttp", per10k: 100, expected: failed("DiscoveryError") },
  { name: "userinfo", per10k: 150, expected: { status: "completed" } },
  { name: "dotId", per10k: 50, expected: { status: "rejected" } },
  { name: "notAnObject", per10k: 50, expected: { status: "rejected" } }
]

/** The fault-free delegation. */
export const OK: Fault = { name: "ok", per10k: 10_000 - FAULTS.reduce((sum, f) => sum + f.per10k, 0), expected: { status: "completed" } }
