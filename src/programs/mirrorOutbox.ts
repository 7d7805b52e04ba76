/**
 * Delivering the writes a delegation's platform row must show (record, then the final update):
 * a write is sent at once from the delegation's own fiber, and nothing is kept for it when it
 * lands (the common case costs a request and nothing more); one that fails for a transient reason
 * (no answer, a timeout, 408/429/5xx) is owed, and the outbox's fiber sends it again on a backoff
 * until the platform acknowledges it, in order per delegation (an update never overtakes the
 * record it updates). A write the platform rejects (400, 401, 404, ...) would be rejected again:
 * it is dropped with a warning. When the layer closes, what is owed (a write cut short by the
 * close among it) is sent once more, within the closing bound; what is still owed then is logged
 * once, with the count.
 *
 * While a delegation owes a write, its stored state says so (`platformPending`).
 *
 * Part of the steps' engine: the steps reach it through `Engine.outbox` and `deliverWrite`
 * (./engine.ts).
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit, Option } from "effect"
import type { Scope } from "effect"
import type { PlatformMirror, RecordDelegation, UpdateDelegation } from "../services/PlatformMirror.js"
import { PlatformError } from "../services/PlatformMirror.js"
import type { Warnings } from "../internal/warnings.js"

/**
 * One write of a platform row.
 *
 * @internal
 */
export type Write =
  | { readonly _tag: "record"; readonly request: RecordDelegation }
  | { readonly _tag: "update"; readonly request: UpdateDelegation }

/**
 * @internal
 */
export interface Outbox {
  /**
   * Sends `write` for delegation `id` from the caller's fiber, unless earlier writes of it are still
   * owed: then it waits behind them. A transient failure, or the caller's interruption while it is
   * on its way, leaves it owed. Never fails.
   */
  readonly deliver: (
    id: string,
    write: Write,
    annotations?: Readonly<Record<string, unknown>>
  ) => Effect.Effect<void>
}

/**
 * What the outbox needs of its layer.
 *
 * @internal
 */
export interface OutboxOptions {
  readonly mirror: PlatformMirror["Type"]
  readonly warnings: Warnings
  /** Notes in the store whether delegation `id` owes the platform a write. */
  readonly setPending: (id: string, pending: boolean) => Effect.Effect<void>
  /** Upper bound of each attempt, when the mirror does not bound its own calls. */
  readonly timeout?: Duration.Duration | undefined
  /** The first wait before owed writes are sent again (1 s), doubling up to `max` (30 s). */
  readonly backoff?: { readonly initial: Duration.Duration; readonly max: Duration.Duration } | undefined
  /** Bounds the last round sent when the layer closes (the layer's closing bound); unbounded by default. */
  readonly atClose?: ((effect: Effect.Effect<void>) => Effect.Effect<void>) | undefined
}

/** The owed writes of one delegation, oldest first; `busy` while one of them is being sent. */
interface Owed {
  readonly writes: Array<Write>
  readonly annotations: Readonly<Record<string, unknown>>
  busy: boolean
  /** Its stored state says it owes a write. */
  pending: boolean
}

const oneLine = (text: string): string => text.replace(/\s+/g, " ")

const DEFAULT_BACKOFF = { initial: Duration.seconds(1), max: Duration.seconds(30) }

/** Owed delegations sent again at once. */
const CONCURRENCY = 16

/**
 * True for a failure after which the same write may land: no answer, or an answer asking to come back.
 *
 * @internal
 */
export const isTransient = (error: PlatformError): boolean =>
  error.reason === "Transport" || error.reason === "Timeout" ||
  (error.reason === "Status" && error.status !== undefined &&
    (error.status === 408 || error.status === 429 || error.status >= 500))

/** The failure of a write that may land if it is sent again; `undefined` for a rejection or a defect. */
const transientFailure = (cause: Cause.Cause<PlatformError>): PlatformError | undefined => {
  const failure = Cause.failureOption(cause)
  return Option.isSome(failure) && isTransient(failure.value) ? failure.value : undefined
}

/**
 * Starts the outbox; its fiber, and the count of what is owed at close, belong to the current scope.
 *
 * @internal
 */
export const make = (options: OutboxOptions): Effect.Effect<Outbox, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { mirror, setPending, warnings } = options
    const backoff = options.backoff ?? DEFAULT_BACKOFF
    const owed = new Map<string, Owed>()
    const wake = yield* Effect.makeLatch(false)

    const timeout = options.timeout
    const send = (write: Write): Effect.Effect<void, PlatformError> => {
      const sent = write._tag === "record" ? mirror.record(write.request) : mirror.update(write.request)
      return timeout === undefined ? sent : Effect.timeoutFail(sent, {
        duration: timeout,
        onTimeout: () =>
          new PlatformError({ operation: write._tag, reason: "Timeout", detail: `no answer within ${Duration.format(timeout)}` })
      })
    }

    /** Sends the oldest owed write of `id`; true when the next one may follow at once. */
    const sendHead = (id: string, entry: Owed): Effect.Effect<boolean> => {
      const write = entry.writes[0]
      if (write === undefined || entry.busy) return Effect.succeed(false)
      entry.busy = true
      // Cut short (a closing layer, a cancel): still owed, and left to the outbox's fiber.
      const sent = Effect.onInterrupt(Effect.exit(send(write)), () =>
        Effect.suspend(() => {
          entry.busy = false
          return wake.open
        }))
      return Effect.flatMap(sent, (exit) => {
        entry.busy = false
        if (Exit.isSuccess(exit)) return Effect.as(settle(id, entry), true)
        const transient = transientFailure(exit.cause)
        if (transient !== undefined) return Effect.as(stillOwed(id, entry, transient), false)
        return Effect.as(Effect.zipRight(rejected(write, exit.cause, entry.annotations), settle(id, entry)), true)
      })
    }

    // The write landed (or can never land): the next one of the delegation, or nothing owed.
    const settle = (id: string, entry: Owed): Effect.Effect<void> => {
      entry.writes.shift()
      if (entry.writes.length > 0) return wake.open
      owed.delete(id)
      return entry.pending ? setPending(id, false) : Effect.void
    }

    const stillOwed = (id: string, entry: Owed, error: PlatformError): Effect.Effect<void> => {
      const note = warnings.warn(
        `platform ${error.operation}`,
        `platform ${error.operation} failed; it is sent again until the platform acknowledges it: ${oneLine(error.message)}`,
        { cause: Cause.fail(error), annotations: entry.annotations }
      )
      return Effect.all([note, markPending(id, entry), wake.open], { discard: true })
    }

    const rejected = (write: Write, cause: Cause.Cause<PlatformError>, annotations: Readonly<Record<string, unknown>>) => {
      const error = Cause.squash(cause)
      return warnings.warn(
        `platform ${write._tag}`,
        `platform ${write._tag} failed; the platform rejected it, so it is not sent again: ${
          oneLine(error instanceof Error ? error.message : String(error))
        }`,
        { cause, annotations }
      )
    }

    // Every owed delegation's writes in order, until one fails again.
    const drain = (id: string): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        const entry = owed.get(id)
        if (entry === undefined) return Effect.succeed(false)
        return Effect.flatMap(sendHead(id, entry), (next) => (next ? Effect.as(drain(id), true) : Effect.succeed(false)))
      })

    // Suspended: the owed ids are read when the round runs, not when it is built.
    const round = Effect.suspend(() =>
      Effect.map(
        Effect.forEach(Array.from(owed.keys()), drain, { concurrency: CONCURRENCY }),
        (results) => results.some((delivered) => delivered)
      )
    )

    // A round, then a wait that doubles while nothing lands; a newly owed write wakes it at the first wait.
    const next = (wait: Duration.Duration): Effect.Effect<Duration.Duration> =>
      Effect.gen(function*() {
        yield* wake.close
        if (owed.size === 0) {
          yield* wake.await
          return backoff.initial
        }
        yield* Effect.sleep(wait)
        const delivered = yield* round
        return delivered ? backoff.initial : Duration.min(Duration.times(wait, 2), backoff.max)
      })
    yield* Effect.forkScoped(Effect.iterate(backoff.initial, { while: () => true, body: next }))

    // A write cut short by the close (or owed, waiting for its next round) gets one more chance, one
    // delegation at a time: a concurrent round forked from a finalizer was not cut at the bound.
    const lastRound = Effect.suspend(() => Effect.forEach(Array.from(owed.keys()), drain, { discard: true }))
    const atClose = options.atClose ?? ((effect: Effect.Effect<void>) => effect)
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(atClose(lastRound), Effect.suspend(() => {
        let writes = 0
        for (const entry of owed.values()) writes += entry.writes.length
        return writes === 0 ? Effect.void : Effect.logWarning(
          `the Delegations layer closed with ${writes} platform write(s) of ${owed.size} delegation(s) not ` +
            "acknowledged by the platform; their rows on the platform are out of date"
        )
      }))
    )

    // Behind an earlier write still owed: the delegation's row is now behind its state.
    const behind = (id: string, entry: Owed, write: Write): Effect.Effect<void> => {
      entry.writes.push(write)
      const mark = markPending(id, entry)
      return entry.busy ? mark : Effect.zipRight(mark, wake.open)
    }

    // Owed from now on: the outbox's fiber sends it, after any earlier write of the delegation.
    const owe = (
      id: string,
      write: Write,
      annotations: Readonly<Record<string, unknown>>,
      error: PlatformError | undefined
    ): Effect.Effect<void> =>
      Effect.suspend(() => {
        const existing = owed.get(id)
        const entry: Owed = existing ?? { writes: [], annotations, busy: false, pending: false }
        entry.writes.unshift(write)
        if (existing === undefined) owed.set(id, entry)
        return error === undefined ? Effect.zipRight(markPending(id, entry), wake.open) : stillOwed(id, entry, error)
      })

    const markPending = (id: string, entry: Owed) =>
      entry.pending ? Effect.void : Effect.suspend(() => {
        entry.pending = true
        return setPending(id, true)
      })

    // The first attempt of a write, from the caller's fiber: nothing is kept unless it fails.
    const firstAttempt = (id: string, write: Write, annotations: Readonly<Record<string, unknown>>) =>
      send(write).pipe(
        Effect.catchAllCause((cause): Effect.Effect<void, never> => {
          // Interrupted: `onInterrupt` below keeps it owed.
          if (Cause.isInterruptedOnly(cause)) return Effect.interrupt
          const transient = transientFailure(cause)
          return transient !== undefined ? owe(id, write, annotations, transient) : rejected(write, cause, annotations)
        }),
        // Cut short on its way (a cancel, a closing layer): it may not have landed.
        Effect.onInterrupt(() => owe(id, write, annotations, undefined))
      )

    const deliver: Outbox["deliver"] = (id, write, annotations = {}) =>
      Effect.suspend(() => {
        const existing = owed.get(id)
        if (existing !== undefined) return behind(id, existing, write)
        return firstAttempt(id, write, annotations)
      })

    return { deliver }
  })
