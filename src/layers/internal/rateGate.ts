/**
 * The pace of one layer's platform requests, learned from the platform's own answers.
 *
 * The platform limits every caller with a token bucket (600 requests a minute by default) and
 * says where it stands on every answer (`X-RateLimit-Limit`, `-Remaining`, `-Reset`), and how
 * long to wait on a refusal (429 with `Retry-After`). The gate keeps an estimate of that bucket:
 * - until an answer has said whether there is a limit, a few requests at a time go out
 *   (`FIRST_IN_FLIGHT`: not one, so that a silent platform does not queue every call behind one
 *   request's timeout);
 * - each request takes a token; tokens come back at the rate the answers imply
 *   (`(limit - remaining) / reset`, the best seen), at most `limit`;
 * - each answer can only lower the estimate (its `remaining`, plus what came back since it was
 *   counted, less our requests sent after it), so other callers behind the same address count too;
 * - a refusal closes the gate for every waiting request until its `Retry-After` has passed.
 * Requests that find no token wait in order, those that start or finish a delegation's outcome
 * before the background ones. A host's own ceiling (`PLATFORM_RATE_LIMIT`) is a bucket the
 * estimate never exceeds. An answer without the headers means there is no limit to follow.
 *
 * @internal
 */
import { Clock, Deferred, Duration, Effect, MutableList } from "effect"
import type { Scope } from "effect"

/**
 * Who waits first for a place: the calls that start or finish a delegation (record, discover, send
 * through the proxy, delegate, update), then the rest (the reconciler's list, notify).
 *
 * @internal
 */
export type Priority = "outcome" | "background"

/**
 * A place given to one request: when it was given and how many were given before it.
 *
 * @internal
 */
export interface Ticket {
  readonly seq: number
  readonly at: number
}

/**
 * What an answer says of the limit.
 *
 * @internal
 */
export interface Answer {
  readonly headers: Readonly<Record<string, string | undefined>>
  /** The platform refused the request (429, 503 unavailable) and asks to wait this long. */
  readonly refusedForMillis?: number | undefined
}

/**
 * A wait the gate is making the requests do, for the host's log.
 *
 * @internal
 */
export interface Waiting {
  readonly waiting: number
  readonly millis: number
  readonly limit: number | undefined
  readonly refused: boolean
}

/**
 * The gate of one layer.
 *
 * @internal
 */
export interface RateGate {
  /** True while no limit is known to follow and nobody waits: a request may go without a place. */
  readonly isOpen: () => boolean
  /** True for an answer that says nothing of a limit (no `X-RateLimit-*`, not a refusal). */
  readonly plain: (status: number, headers: Answer["headers"]) => boolean
  /** What an answer to a request sent without a place says of the limit. */
  readonly observed: (answer: Answer) => Effect.Effect<void>
  /** A place for one request, in order; `undefined` when none came within `maxWait`. */
  readonly take: (priority: Priority, maxWait?: Duration.Duration) => Effect.Effect<Ticket | undefined>
  /** The request given `ticket` was answered. */
  readonly answered: (ticket: Ticket, answer: Answer) => Effect.Effect<void>
  /** The request given `ticket` got no answer (or was never sent). */
  readonly unanswered: (ticket: Ticket) => Effect.Effect<void>
  /** Requests waiting for a place. */
  readonly waiting: Effect.Effect<number>
}

/**
 * Options of the gate.
 *
 * @internal
 */
export interface GateOptions {
  /** At most `limit` requests per `interval`, whatever the platform allows. */
  readonly ceiling?: { readonly limit: number; readonly interval: Duration.Duration } | undefined
  /** Called when requests start to wait (rate limited or refused), at most once per wait. */
  readonly onWait?: ((waiting: Waiting) => Effect.Effect<void>) | undefined
}

/** Requests in flight before any answer has told whether there is a limit. */
const FIRST_IN_FLIGHT = 8

/** The platform's RATE_LIMIT is per minute: the refill assumed until answers tell better. */
const DEFAULT_WINDOW_MILLIS = 60_000

interface Waiter {
  readonly deferred: Deferred.Deferred<Ticket>
  gone: boolean
}

/** The estimate of the platform's bucket, as the answers tell it. */
class Budget {
  /** An answer said whether there is a limit (or the host set one). */
  known = false
  limit: number | undefined = undefined
  tokens = 0
  /** Tokens back per millisecond. */
  perMilli = 0
  /** The best refill rate the answers have implied so far. */
  learnedPerMilli: number | undefined = undefined
  at = 0
  blockedUntil = 0
  inflight = 0
  issued = 0

  constructor(readonly ceiling: GateOptions["ceiling"]) {
    if (ceiling !== undefined) {
      this.known = true
      this.limit = ceiling.limit
      this.tokens = ceiling.limit
      this.perMilli = ceiling.limit / Math.max(1, Duration.toMillis(ceiling.interval))
    }
  }

  refill(now: number): void {
    if (this.limit !== undefined && now > this.at) this.tokens = Math.min(this.limit, this.tokens + (now - this.at) * this.perMilli)
    this.at = Math.max(this.at, now)
  }

  /** Milliseconds until the next place; Infinity while only an answer can open one. */
  waitMillis(now: number): number {
    if (now < this.blockedUntil) return this.blockedUntil - now
    if (!this.known) return this.inflight < FIRST_IN_FLIGHT ? 0 : Infinity
    if (this.limit === undefined || this.tokens >= 1) return 0
    return this.perMilli > 0 ? Math.ceil((1 - this.tokens) / this.perMilli) : Infinity
  }

  take(now: number): Ticket {
    if (this.limit !== undefined) this.tokens -= 1
    this.inflight++
    this.issued++
    return { seq: this.issued, at: now }
  }

  answered(ticket: Ticket, answer: Answer, now: number): void {
    this.inflight = Math.max(0, this.inflight - 1)
    this.refill(now)
    const limit = headerNumber(answer.headers, "x-ratelimit-limit")
    const remaining = headerNumber(answer.headers, "x-ratelimit-remaining")
    if (limit !== undefined && limit >= 1 && remaining !== undefined) {
      this.learn(limit, remaining, resetMillis(answer.headers, now))
      // What the answer counted, what came back since, less our requests it could not count.
      const estimate = Math.min(this.limit!, remaining + (now - ticket.at) * this.perMilli) - (this.issued - ticket.seq)
      this.tokens = this.known && this.learnedOnce ? Math.min(this.tokens, estimate) : estimate
      this.known = true
      this.learnedOnce = true
    } else if (!this.known) {
      // No limit to follow: the platform says nothing of one.
      this.known = true
    }
    if (answer.refusedForMillis !== undefined) {
      this.blockedUntil = Math.max(this.blockedUntil, now + answer.refusedForMillis)
      if (this.limit !== undefined) this.tokens = Math.min(this.tokens, 0)
    }
  }

  private learnedOnce = false

  private learn(limit: number, remaining: number, reset: number | undefined): void {
    // `reset` is rounded up to whole seconds, so each reading is a lower bound of the rate: keep the best.
    if (reset !== undefined && reset > 0 && remaining < limit) {
      const rate = (limit - remaining) / reset
      this.learnedPerMilli = Math.max(this.learnedPerMilli ?? 0, rate)
    }
    // The platform's limit is per minute: a reading made with few tokens spent says less than that.
    const learned = Math.max(this.learnedPerMilli ?? 0, limit / DEFAULT_WINDOW_MILLIS)
    const ceiling = this.ceiling
    this.limit = ceiling === undefined ? limit : Math.min(limit, ceiling.limit)
    this.perMilli = ceiling === undefined
      ? learned
      : Math.min(learned, ceiling.limit / Math.max(1, Duration.toMillis(ceiling.interval)))
  }

  unanswered(): void {
    this.inflight = Math.max(0, this.inflight - 1)
  }

  /** An answer to a request sent while no limit was known (it took no place). */
  observed(answer: Answer, now: number): void {
    this.inflight++
    this.answered({ seq: this.issued, at: now }, answer, now)
  }
}

const headerNumber = (headers: Answer["headers"], name: string): number | undefined => {
  const value = headers[name]
  if (value === undefined) return undefined
  const number = Number(value.trim())
  return Number.isFinite(number) && number >= 0 ? number : undefined
}

/** `X-RateLimit-Reset` in milliseconds from now: seconds to go, or an epoch time in seconds. */
const resetMillis = (headers: Answer["headers"], now: number): number | undefined => {
  const reset = headerNumber(headers, "x-ratelimit-reset")
  if (reset === undefined) return undefined
  return reset > 1e9 ? Math.max(0, reset * 1000 - now) : reset * 1000
}

/**
 * Starts a gate whose dispatcher lives in the current scope.
 *
 * @internal
 */
export const make = (options: GateOptions = {}): Effect.Effect<RateGate, never, Scope.Scope> =>
  Effect.gen(function*() {
    const budget = new Budget(options.ceiling)
    const queues: Record<Priority, MutableList.MutableList<Waiter>> = {
      outcome: MutableList.empty(),
      background: MutableList.empty()
    }
    const wake = yield* Effect.makeLatch(false)
    let told = false

    const head = (): Waiter | undefined => {
      for (const queue of [queues.outcome, queues.background]) {
        let first = MutableList.head(queue)
        while (first !== undefined && first.gone) {
          MutableList.shift(queue)
          first = MutableList.head(queue)
        }
        if (first !== undefined) return first
      }
      return undefined
    }
    const waitingCount = () => MutableList.length(queues.outcome) + MutableList.length(queues.background)
    const pop = (waiter: Waiter) => {
      MutableList.shift(MutableList.head(queues.outcome) === waiter ? queues.outcome : queues.background)
    }

    // A place handed to a waiter that left in the meantime comes back.
    const giveBack = Effect.suspend(() => {
      budget.unanswered()
      if (budget.limit !== undefined) budget.tokens = Math.min(budget.limit, budget.tokens + 1)
      return wake.open
    })

    // One place at a time to the oldest waiter of the first priority that has one.
    const serve: Effect.Effect<void> = Effect.gen(function*() {
      yield* wake.close
      const next = head()
      if (next === undefined) {
        told = false
        return yield* wake.await
      }
      const now = yield* Clock.currentTimeMillis
      budget.refill(now)
      const wait = budget.waitMillis(now)
      if (wait === 0) {
        pop(next)
        if (!(yield* Deferred.succeed(next.deferred, budget.take(now)))) yield* giveBack
        return
      }
      if (!told && options.onWait !== undefined && wait !== Infinity) {
        told = true
        yield* options.onWait({
          waiting: waitingCount(),
          millis: wait,
          limit: budget.limit,
          refused: now < budget.blockedUntil
        })
      }
      yield* wait === Infinity ? wake.await : Effect.raceFirst(Effect.sleep(Duration.millis(wait)), wake.await)
    })
    yield* Effect.forkScoped(Effect.forever(serve))

    const queued = (priority: Priority, maxWait: Duration.Duration | undefined): Effect.Effect<Ticket | undefined> =>
      Effect.flatMap(Deferred.make<Ticket>(), (deferred) => {
        const waiter: Waiter = { deferred, gone: false }
        MutableList.append(queues[priority], waiter)
        const awaited = Effect.zipRight(wake.open, Deferred.await(deferred))
        const leave = Effect.suspend(() => {
          waiter.gone = true
          return Effect.flatMap(Deferred.interrupt(deferred), (first) => (first ? Effect.void : giveBack))
        })
        const bounded: Effect.Effect<Ticket | undefined> = maxWait === undefined
          ? awaited
          : Effect.catchTag(Effect.timeout(awaited, maxWait), "TimeoutException", () => Effect.succeed(undefined))
        return Effect.onExit(bounded, (exit) => (exit._tag === "Success" && exit.value !== undefined ? Effect.void : leave))
      })

    // The dispatcher only has work when someone waits.
    const wakeWaiters = Effect.suspend(() => (waitingCount() === 0 ? Effect.void : wake.open))

    return {
      isOpen: () => budget.known && budget.limit === undefined && budget.blockedUntil === 0 && waitingCount() === 0,
      plain: (status, headers) => status !== 429 && status !== 503 && headers["x-ratelimit-limit"] === undefined,
      observed: (answer) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          budget.observed(answer, now)
          return wakeWaiters
        }),
      take: (priority, maxWait) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          budget.refill(now)
          // The common case, with nobody waiting and a place free, takes it at once.
          if (MutableList.isEmpty(queues.outcome) && MutableList.isEmpty(queues.background) && budget.waitMillis(now) === 0) {
            return Effect.succeed(budget.take(now))
          }
          return queued(priority, maxWait)
        }),
      answered: (ticket, answer) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          budget.answered(ticket, answer, now)
          return wakeWaiters
        }),
      unanswered: () =>
        Effect.suspend(() => {
          budget.unanswered()
          return wakeWaiters
        }),
      waiting: Effect.sync(waitingCount)
    }
  })
