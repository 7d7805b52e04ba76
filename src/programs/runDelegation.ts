/**
 * The body of one delegation's background fiber.
 *
 * Every path ends in a defined state: completed, queued or failed (including a
 * defect in a service, and interruption when the owning layer closes).
 *
 * @since 0.1.0
 */
import {
  Cause,
  Clock,
  Context,
  DateTime,
  Duration,
  Effect,
  Either,
  Exit,
  FiberId,
  FiberRef,
  Metric,
  Option,
  Schedule,
  Tracer
} from "effect"
import type { Task } from "../services/A2A.js"
import { answerText } from "../services/A2A.js"
import type {
  A2AError,
  A2ATransportError,
  JsonRpcError,
  PeerProtocol,
  QueuedReply,
  SendReply,
  TaskReply
} from "../services/A2ATransport.js"
import { A2ATransport, isVersionMismatch } from "../services/A2ATransport.js"
import type { AuditEvent } from "../services/Audit.js"
import { Audit } from "../services/Audit.js"
import type { DelegationFailure, DelegationId } from "../services/Delegations.js"
import { Delegation, DelegationAborted, DelegationTimeout, PeerTaskFailed } from "../services/Delegations.js"
import type { PeerEndpoint } from "../services/Discovery.js"
import { Discovery } from "../services/Discovery.js"
import { PlatformMirror, truncate } from "../services/PlatformMirror.js"
import { bestEffort } from "./bestEffort.js"
import * as Metrics from "./metrics.js"
import { canFallBack, otherVersion } from "./protocol.js"
import type { DelegationStore } from "./store.js"

/**
 * How the delegation program behaves; built once per `Delegations` layer.
 *
 * @since 0.1.0
 * @category models
 */
export interface DelegationSettings {
  /** This workspace's own id (the source of every delegation). */
  readonly workspaceId: string
  /**
   * When to re-send after a transport failure; its input is the failure. `runDelegation`
   * uses it as given: wrap a host's schedule with `withRetryAfter` once, when building.
   */
  readonly retrySchedule: Schedule.Schedule<unknown, A2ATransportError>
  /** When to poll `tasks/get` while the peer's task is submitted or working. */
  readonly pollSchedule: Schedule.Schedule<unknown, unknown>
  /** How long a peer task may stay submitted/working (`DELEGATION_TIMEOUT`). */
  readonly timeout: Duration.Duration
  /**
   * Upper bound the program puts on each best-effort platform call. Leave it out when the
   * `PlatformMirror` bounds its own calls (the live one does), to save a timer per call.
   */
  readonly mirrorTimeout?: Duration.Duration | undefined
}

/**
 * One delegation to run.
 *
 * @since 0.1.0
 * @category models
 */
export interface DelegationInput {
  readonly id: DelegationId
  readonly target: string
  /** The full task text (the store keeps only a preview). */
  readonly task: string
}

type Outcome =
  | { readonly _tag: "Completed"; readonly result: string }
  | { readonly _tag: "Queued"; readonly reply: QueuedReply }

/** A peer's answer to the send, and the version (and URL) it answered in: its task is followed in it. */
interface Sent {
  readonly reply: SendReply
  readonly protocol: PeerProtocol
}

type RetryDriver = Schedule.ScheduleDriver<unknown, A2ATransportError, never>

/** Characters of the task kept in the store and in audit previews. */
export const TASK_PREVIEW = 200

/**
 * The first 200 characters of a task, as a string that does not keep the full task alive.
 *
 * @since 0.1.0
 * @category utils
 */
export const taskPreview = (task: string): string =>
  // A sliced string would pin the whole (up to 1 MiB) task in memory for as long as the store keeps it.
  task.length <= TASK_PREVIEW ? task : decoder.decode(encoder.encode(truncate(task, TASK_PREVIEW)))

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Current time as a UTC `DateTime`, from the `Clock` service.
 *
 * @since 0.1.0
 * @category utils
 */
export const nowUtc: Effect.Effect<DateTime.Utc> = Effect.clockWith((clock) =>
  // Read synchronously from the fiber's Clock: one run-loop step, where a map over
  // `currentTimeMillis` takes three.
  Effect.succeed(DateTime.unsafeMake(clock.unsafeCurrentTimeMillis()))
)

/**
 * A copy of a delegation with some fields replaced and `updatedAt` set.
 *
 * @since 0.1.0
 * @category utils
 */
export const patch = (
  delegation: Delegation,
  fields: Partial<ConstructorParameters<typeof Delegation>[0]>,
  updatedAt: DateTime.Utc
): Delegation =>
  // A copy with the same prototype: what the Schema constructor builds, without its per-call work
  // (this runs on every state change of every delegation).
  Object.assign(Object.create(Delegation.prototype) as Delegation, delegation, fields, { updatedAt })

/**
 * Adds an event to the current span, if one is recording.
 *
 * @since 0.1.0
 * @category tracing
 */
export const spanEvent = (name: string, attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.currentSpan.pipe(
    Effect.flatMap((span) => Effect.map(Clock.currentTimeNanos, (now) => span.event(name, now, attributes))),
    Effect.ignore
  )

const traceparentOf = (span: Tracer.Span): string =>
  `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`

/**
 * The default retry policy of the original module: `attempts` POSTs in total,
 * waiting `delay * n` before the n-th retry.
 *
 * @since 0.1.0
 * @category schedules
 */
export const linearRetry = (
  attempts: number,
  delay: Duration.DurationInput
): Schedule.Schedule<unknown, A2ATransportError> =>
  Schedule.linear(delay).pipe(Schedule.intersect(Schedule.recurs(Math.max(0, attempts - 1))))

/**
 * Wraps a host's retry schedule: honours `Retry-After` as a lower bound and adds
 * an `a2a.retry` span event for every retry it allows.
 *
 * @since 0.1.0
 * @category schedules
 */
export const withRetryAfter = (
  schedule: Schedule.Schedule<unknown, A2ATransportError>
): Schedule.Schedule<unknown, A2ATransportError> =>
  Schedule.intersect(schedule, Schedule.identity<A2ATransportError>()).pipe(
    Schedule.modifyDelayEffect(([, error], delay) => {
      const wait = error.retryAfterMillis === undefined
        ? delay
        : Duration.max(delay, Duration.millis(error.retryAfterMillis))
      return spanEvent("a2a.retry", {
        "a2a.retry.delay_ms": Duration.toMillis(wait),
        "error.message": error.message
      }).pipe(Effect.zipRight(Metric.increment(Metrics.retries)), Effect.as(wait))
    })
  )

const isPendingState = (state: Task["status"]["state"]): boolean =>
  state === "submitted" || state === "working" || state === "unknown"

/**
 * Runs one delegation to its outcome and records every state change in the store.
 * Never fails: failures become the `failed` state. Returns the final state, which
 * stays readable here even when a small history has already evicted it from the store.
 *
 * @since 0.1.0
 * @category models
 */
export type RunDelegation = (input: DelegationInput) => Effect.Effect<Option.Option<Delegation>>

/**
 * Builds the delegation program once per layer: the services are resolved here,
 * so each delegation's fiber starts straight into its own work.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRunDelegation = (
  store: DelegationStore,
  settings: DelegationSettings
): Effect.Effect<RunDelegation, never, Discovery | A2ATransport | PlatformMirror | Audit> =>
  Effect.gen(function*() {
    const discovery = yield* Discovery
    const transport = yield* A2ATransport
    const mirror = yield* PlatformMirror
    const audit = yield* Audit
    const services = { discovery, transport, mirror, audit }
    return (input) => Effect.flatMap(Metrics.recorder, (metrics) => runWith(input, store, settings, services, metrics))
  })

interface Services {
  readonly discovery: Discovery["Type"]
  readonly transport: A2ATransport["Type"]
  readonly mirror: PlatformMirror["Type"]
  readonly audit: Audit["Type"]
}

const runWith = (
  input: DelegationInput,
  store: DelegationStore,
  settings: DelegationSettings,
  { audit, discovery, mirror, transport }: Services,
  metrics: Metrics.Recorder
): Effect.Effect<Option.Option<Delegation>> => {
  const { id, target, task } = input
  let span: Tracer.Span | undefined
  let attempts = 0

  const update = (fields: Partial<ConstructorParameters<typeof Delegation>[0]>) =>
    Effect.clockWith((clock) =>
      store.update(id, (d) => patch(d, fields, DateTime.unsafeMake(clock.unsafeCurrentTimeMillis())))
    )

  // Audit and mirror are best-effort: a failure (or defect) there is logged, never an outcome.
  const annotations = { delegation_id: id, target_workspace_id: target }
  const mirrorOptions = { timeout: settings.mirrorTimeout, annotations }
  const auditEvent = (outcome: AuditEvent["outcome"], extra: Record<string, unknown>) =>
    audit.log({
      eventType: "delegation",
      action: "delegate",
      resource: target,
      outcome,
      traceId: span?.traceId ?? "",
      delegationId: id,
      extra
    }).pipe(bestEffort("audit", { annotations }))

  const event = (name: string, attributes: Record<string, unknown>) =>
    Effect.clockWith((clock) => Effect.succeed(span?.event(name, clock.unsafeCurrentTimeNanos(), attributes)))

  // The row is updated before the notification goes out, so whoever reacts to the notification reads
  // the final row. Sequential also spares a fiber per delegation (a fork costs more than the wait).
  const mirrorOutcome = (status: "completed" | "failed", error: string, result: string) =>
    mirror.update({ delegationId: id, status, error, responsePreview: result }).pipe(
      bestEffort("platform update", mirrorOptions),
      Effect.zipRight(
        mirror.notify({
          delegationId: id,
          targetId: target,
          status,
          message: status === "completed"
            ? `Delegation ${id} to ${target} completed.`
            : `Delegation ${id} to ${target} failed: ${error}`
        }).pipe(bestEffort("platform notify", mirrorOptions))
      )
    )

  // --- sending ---------------------------------------------------------------------------

  // One POST of the task. A counted one is a new attempt (event, metric, `attempts`); the resend of a
  // version fallback is not: it belongs to the attempt that got the version answer. One clock reading
  // serves the span event and the store update.
  const post = (endpoint: PeerEndpoint, protocol: PeerProtocol, traceparent: string | null, counted: boolean) =>
    Effect.clockWith((clock) => {
      const nanos = clock.unsafeCurrentTimeNanos()
      if (counted) {
        attempts++
        metrics.attempt()
        span?.event("a2a.attempt", nanos, { "a2a.attempt": attempts })
      }
      span?.attribute("a2a.protocol_version", protocol.version)
      const now = DateTime.unsafeMake(Number(nanos / 1_000_000n))
      return store.update(id, (d) => patch(d, { attempts, protocolVersion: protocol.version }, now)).pipe(
        Effect.zipRight(transport.send({
          endpoint,
          protocol,
          messageId: id,
          requestId: counted ? `${id}-${attempts}` : `${id}-${attempts}-${protocol.version}`,
          delegationId: id,
          text: task,
          metadata: { parent_task_id: id, source_workspace_id: settings.workspaceId, traceparent }
        }))
      )
    })

  // Sends until an answer: transport failures are retried on the schedule (whose driver is built once the
  // first one has happened); any other answer fails through untouched, except a version answer
  // (-32009/-32601, given before the agent runs) to a guessed or learned version: that one switches to
  // the other version, once per delegation, and the peer is remembered in it. Retries after the switch
  // stay in the new version.
  const send = (endpoint: PeerEndpoint, first: PeerProtocol, traceparent: string | null): Effect.Effect<Sent, A2AError> => {
    const attempt = (
      protocol: PeerProtocol,
      mayFallBack: boolean,
      counted: boolean,
      driver: RetryDriver | undefined
    ): Effect.Effect<Sent, A2AError> =>
      Effect.matchEffect(post(endpoint, protocol, traceparent, counted), {
        onSuccess: (reply) => Effect.succeed({ reply, protocol }),
        onFailure: (error) => {
          if (error._tag === "A2ATransportError") return retry(protocol, mayFallBack, driver, error)
          if (mayFallBack && isVersionMismatch(error)) return fallBack(protocol, error, driver)
          return Effect.fail(error)
        }
      })
    const retry = (
      protocol: PeerProtocol,
      mayFallBack: boolean,
      driver: RetryDriver | undefined,
      error: A2ATransportError
    ): Effect.Effect<Sent, A2AError> =>
      driver === undefined
        ? Effect.flatMap(Schedule.driver(settings.retrySchedule), (built) => retry(protocol, mayFallBack, built, error))
        : Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => attempt(protocol, mayFallBack, true, driver)
        })
    const fallBack = (
      from: PeerProtocol,
      answer: JsonRpcError,
      driver: RetryDriver | undefined
    ): Effect.Effect<Sent, A2AError> => {
      const to: PeerProtocol = { version: otherVersion(from.version), url: from.url, source: "learned" }
      return transport.rememberProtocol(endpoint, to).pipe(
        Effect.zipRight(event("a2a.protocol_fallback", {
          "a2a.attempt": attempts,
          "a2a.protocol_version.from": from.version,
          "a2a.protocol_version.to": to.version,
          "rpc.jsonrpc.error_code": answer.code
        })),
        Effect.zipRight(attempt(to, false, false, driver))
      )
    }
    return attempt(first, canFallBack(first), true, undefined)
  }

  // --- following a task --------------------------------------------------------------------

  const follow = (endpoint: PeerEndpoint, protocol: PeerProtocol, first: TaskReply) => {
    let current = first
    let polls = 0
    const loop = Effect.gen(function*() {
      const driver = yield* Schedule.driver(settings.pollSchedule)
      yield* update({ taskId: first.task.id })
      while (isPendingState(current.task.status.state)) {
        const next = yield* Effect.either(driver.next(undefined))
        if (Either.isLeft(next)) break
        polls++
        current = yield* transport.getTask({ endpoint, protocol, requestId: `${id}-get-${polls}`, taskId: first.task.id })
          .pipe(Effect.catchTag("A2ATransportError", (error) =>
            Effect.logDebug("tasks/get transport failure; polling again", error).pipe(Effect.as(current))
          ))
      }
      if (isPendingState(current.task.status.state)) return yield* timeoutError()
      return current
    })
    const timeoutError = () =>
      new DelegationTimeout({
        seconds: Duration.toSeconds(settings.timeout),
        taskId: first.task.id,
        lastState: current.task.status.state
      })
    return loop.pipe(Effect.timeoutFail({ duration: settings.timeout, onTimeout: timeoutError }))
  }

  // --- reading the answer ----------------------------------------------------------------------

  const fromTask = (reply: TaskReply): Effect.Effect<Outcome, PeerTaskFailed> => {
    const { task: peerTask } = reply
    const state = peerTask.status.state
    if (state === "completed") {
      return Effect.succeed({ _tag: "Completed", result: answerText(peerTask) ?? JSON.stringify(reply.raw) })
    }
    const statusText = peerTask.status.message === undefined
      ? undefined
      : answerText({ artifacts: [], parts: peerTask.status.message.parts })
    return Effect.fail(
      new PeerTaskFailed({
        reason: state === "failed" || state === "rejected" || state === "canceled" ||
            state === "input-required" || state === "auth-required"
          ? state
          : "failed",
        taskId: peerTask.id,
        detail: statusText ?? ""
      })
    )
  }

  const settle = (endpoint: PeerEndpoint, { protocol, reply }: Sent): Effect.Effect<Outcome, DelegationFailure> => {
    switch (reply._tag) {
      case "QueuedReply":
        return event("a2a.queued", {
          "a2a.attempt": attempts,
          ...(reply.queueId === undefined ? {} : { "a2a.queue_id": reply.queueId }),
          ...(reply.queueDepth === undefined ? {} : { "a2a.queue_depth": reply.queueDepth })
        }).pipe(Effect.as<Outcome>({ _tag: "Queued", reply }))
      case "MessageReply": {
        const text = answerText(reply.message) ?? JSON.stringify(reply.raw)
        // The original runtime reports its own crashes as a normal reply starting with this marker.
        return text.startsWith("Agent error:")
          ? Effect.fail(new PeerTaskFailed({ reason: "agent-error", detail: text }))
          : Effect.succeed<Outcome>({ _tag: "Completed", result: text })
      }
      case "TaskReply":
        return isPendingState(reply.task.status.state)
          ? Effect.flatMap(follow(endpoint, protocol, reply), fromTask)
          : fromTask(reply)
    }
  }

  // --- the delegation ----------------------------------------------------------------------------

  const body = (current: Tracer.Span): Effect.Effect<Outcome, DelegationFailure> =>
    Effect.gen(function*() {
      metrics.started()
      yield* update({ status: "in_progress", ...(current.traceId === "" ? {} : { traceId: current.traceId }) })
      yield* auditEvent("dispatched", { task_preview: taskPreview(task) })
      yield* mirror.record({ delegationId: id, targetId: target, task }).pipe(
        bestEffort("platform record", mirrorOptions)
      )
      const endpoint = yield* discovery.resolve(target)
      current.attribute("a2a.peer_url", endpoint.url)
      const protocol = yield* transport.protocolFor(endpoint)
      const sent = yield* send(endpoint, protocol, traceparentOf(current))
      return yield* settle(endpoint, sent)
    })

  // Counts the outcome and the time it took, from the stored timestamps.
  const measured = (outcome: keyof typeof Metrics.finishedAs, final: Option.Option<Delegation>) =>
    metrics.outcome(
      outcome,
      Option.isSome(final)
        ? (DateTime.toEpochMillis(final.value.updatedAt) - DateTime.toEpochMillis(final.value.createdAt)) / 1000
        : undefined
    )

  const completed = (result: string) =>
    Effect.gen(function*() {
      const final = yield* update({ status: "completed", result })
      measured("completed", final)
      yield* auditEvent("success", { attempt: attempts })
      yield* mirrorOutcome("completed", "", result)
      return final
    })

  const queued = (reply: QueuedReply) =>
    Effect.gen(function*() {
      const final = yield* update({
        status: "queued",
        ...(reply.queueId === undefined ? {} : { queueId: reply.queueId }),
        ...(reply.queueDepth === undefined ? {} : { queueDepth: reply.queueDepth }),
        ...(reply.message === undefined ? {} : { queueMessage: reply.message })
      })
      measured("queued", final)
      yield* auditEvent("queued", {
        attempt: attempts,
        ...(reply.queueId === undefined ? {} : { queue_id: reply.queueId }),
        ...(reply.queueDepth === undefined ? {} : { queue_depth: reply.queueDepth })
      })
      return final
    })

  const failed = (failure: DelegationFailure) =>
    Effect.gen(function*() {
      const changed = yield* Effect.flatMap(nowUtc, (now) =>
        store.update(id, (d) =>
          d.status !== "pending" && d.status !== "in_progress"
            ? d
            : patch(d, { status: "failed", error: failure.message, cause: failure }, now)))
      if (Option.isNone(changed)) return changed
      measured("failed", changed)
      yield* auditEvent("failure", {
        last_error: failure.message,
        reason: failure._tag === "DiscoveryError" ? "discovery_error" : failure._tag,
        attempt: attempts
      })
      yield* mirrorOutcome("failed", failure.message, "")
      return changed
    })

  const interrupted = () =>
    new DelegationAborted({
      reason: "interrupted",
      detail: "the Delegations layer was closed before the delegation ended"
    })

  // Every exit of the body is an outcome; a defect in a service becomes a typed failure.
  const record = (exit: Exit.Exit<Outcome, DelegationFailure>) => {
    if (Exit.isSuccess(exit)) {
      return exit.value._tag === "Completed" ? completed(exit.value.result) : queued(exit.value.reply)
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) return failed(failure.value)
    return failed(
      Cause.isInterruptedOnly(exit.cause)
        ? interrupted()
        : new DelegationAborted({ reason: "defect", detail: Cause.pretty(exit.cause) })
    )
  }

  const endSpan = (exit: Exit.Exit<unknown, unknown>) =>
    Effect.clockWith((clock) => {
      if (span !== undefined && span.status._tag !== "Ended") span.end(clock.unsafeCurrentTimeNanos(), exit)
      return Effect.void
    })

  return Effect.gen(function*() {
    const current = yield* Effect.makeSpan("task_delegate", {
      kind: "client",
      // The stack of a background fiber says nothing useful, and capturing it costs.
      captureStackTrace: false,
      attributes: {
        "workspace.id": settings.workspaceId,
        "a2a.source_workspace_id": settings.workspaceId,
        "a2a.target_workspace_id": target,
        "a2a.task_id": id
      }
    })
    span = current
    // This fiber runs this delegation only, so the span joins its context for good: everything below
    // (requests, logs, the host's client spans) is under it, without the restore of a scoped provide.
    yield* FiberRef.update(FiberRef.currentContext, Context.add(Tracer.ParentSpan, current))
    const exit = yield* Effect.exit(body(current))
    // The span covers the work up to the outcome; recording it is bookkeeping.
    yield* endSpan(exit)
    return yield* record(exit)
  }).pipe(
    Effect.onInterrupt((interruptors) =>
      Effect.zipRight(
        endSpan(Exit.failCause(Cause.interrupt(FiberId.combineAll(interruptors)))),
        failed(interrupted())
      )
    )
  )
}
