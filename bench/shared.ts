/**
 * What the benchmark's processes share.
 */

export interface RoundResult {
  readonly side: string
  readonly n: number
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  /** Peak resident set of this process, in bytes. */
  readonly peakRss: number
  readonly failed: number
  /** CPU time of the round's process (every thread, GC included) per measured delegation, in µs. */
  readonly cpuMicros: number
  /** Library sides: delegations still running once all were awaited (the FiberMap's size). */
  readonly runningAfter?: number
  /** Library sides: active handles before the layer was built and after it was closed. */
  readonly handlesBefore?: number
  readonly handlesAfter?: number
}

export const SELF = "ws-bench"
export const PEER = "ws-peer"
export const TOKEN = "bench-token"
export const POOL = 256
