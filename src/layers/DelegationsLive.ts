/**
 * The `Delegations` service: a `FiberMap` of running delegations next to a
 * `Ref` store, owned by a scoped layer. Closing the layer interrupts every
 * running delegation, and each one records itself as failed (`interrupted`).
 *
 * @since 0.1.0
 */
import type { HttpClient } from "@effect/platform"
import { FileSystem, Path } from "@effect/platform"
import {
  Config,
  ConfigError,
  Duration,
  Effect,
  Either,
  Exit,
  FiberMap,
  Layer,
  LogLevel,
  Option,
  Redacted,
  Schedule,
  Schema
} from "effect"
import type { Scope } from "effect"
import { bestEffort, currentTraceId } from "../programs/bestEffort.js"
import { refreshQueued } from "../programs/refreshQueued.js"
import * as Gate from "../programs/gate.js"
import type { DelegationSettings, RunDelegation } from "../programs/runDelegation.js"
import { linearRetry, makeRunDelegation, nowUtc, patch, taskPreview, withRetryAfter } from "../programs/runDelegation.js"
import * as Store from "../programs/store.js"
import { validate } from "../programs/validate.js"
import { ProtocolSetting } from "../services/A2A.js"
import type { A2ATransportError } from "../services/A2ATransport.js"
import { A2ATransport } from "../services/A2ATransport.js"
import { Audit } from "../services/Audit.js"
import type { DelegationId } from "../services/Delegations.js"
import { Delegation, DelegationAborted, DelegationNotFound, Delegations } from "../services/Delegations.js"
import { Discovery, isHttpUrl } from "../services/Discovery.js"
import { PlatformMirror } from "../services/PlatformMirror.js"
import type { Permissions } from "../services/Rbac.js"
import { Rbac } from "../services/Rbac.js"
import * as A2ATransportHttp from "./A2ATransportHttp.js"
import * as AuditFile from "./AuditFile.js"
import * as AuditLog from "./AuditLog.js"
import * as DiscoveryHttp from "./DiscoveryHttp.js"
import * as DiscoveryProxy from "./DiscoveryProxy.js"
import * as PlatformMirrorHttp from "./PlatformMirrorHttp.js"
import * as RbacStatic from "./RbacStatic.js"

/**
 * Settings of the service itself (the services it uses are separate layers).
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings extends DelegationSettings {
  /** Finished delegations kept in the store (`DELEGATION_HISTORY`). */
  readonly history: number
  /**
   * Delegations running at once (`DELEGATION_CONCURRENCY`); the others stay `pending`, in
   * order, until a place is free. Unbounded when left out.
   */
  readonly concurrency?: number | undefined
}

/**
 * Default `tasks/get` polling: 0.5 s doubling, at most 10 s apart.
 *
 * @since 0.1.0
 * @category schedules
 */
export const defaultPollSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("500 millis").pipe(
  Schedule.union(Schedule.spaced("10 seconds"))
)

// A UUID v4 from the Random service, so TestRandom makes ids reproducible. Each `nextInt` draw has 53
// random bits, of which 48 are used; the digits come from a byte table because `toString(16)` of a
// large number is slow (this runs once per delegation).
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"))
const high24 = (draw: number): number => Math.floor(draw / 0x1000000) % 0x1000000
const low24 = (draw: number): number => draw % 0x1000000
const hex24 = (bits: number): string => HEX[bits >>> 16]! + HEX[(bits >>> 8) & 0xff]! + HEX[bits & 0xff]!
const newId: Effect.Effect<DelegationId> = Effect.randomWith((random) =>
  Effect.gen(function*() {
    const a = yield* random.nextInt
    const b = yield* random.nextInt
    const c = yield* random.nextInt
    const low = low24(a)
    const version = (0x1000 | (high24(b) & 0xfff)).toString(16).slice(1)
    const variant = (0x8000 | (low24(b) & 0x3fff)).toString(16)
    return `${hex24(high24(a))}${HEX[low >>> 16]}-${HEX[(low >>> 8) & 0xff]}${HEX[low & 0xff]}-4${version}-${variant}-${
      hex24(high24(c))
    }${hex24(low24(c))}` as DelegationId
  })
)

/**
 * Builds the service; its fibers live in the surrounding scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  settings: Settings
): Effect.Effect<
  Delegations["Type"],
  never,
  Scope.Scope | Discovery | A2ATransport | PlatformMirror | Audit | Rbac
> =>
  Effect.gen(function*() {
    const rbac = yield* Rbac
    const audit = yield* Audit
    const context = yield* Effect.context<Discovery | A2ATransport | PlatformMirror | Audit>()
    const store = yield* Store.make(settings.history)
    // Retry-After and the retry span events wrap the host's schedule once, not per delegation.
    const programSettings: DelegationSettings = { ...settings, retrySchedule: withRetryAfter(settings.retrySchedule) }
    const runDelegation = yield* makeRunDelegation(store, programSettings)
    const concurrency = settings.concurrency
    if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1)) {
      // Zero places would leave every delegation pending for ever: a programming error, not a state.
      return yield* Effect.dieMessage(`Settings.concurrency must be an integer >= 1, got ${concurrency}`)
    }
    const gate = concurrency === undefined ? undefined : Gate.make(concurrency)
    const start: RunDelegation = gate === undefined ? runDelegation : (input) => gate.enter(runDelegation(input))

    const abort = (id: DelegationId, detail: string) =>
      Effect.flatMap(nowUtc, (now) =>
        store.update(id, (d) => {
          if (d.status !== "pending") return d
          const cause = new DelegationAborted({ reason: "interrupted", detail })
          return patch(d, { status: "failed", error: cause.message, cause }, now)
        }))
    // Added before the FiberMap, so it runs after the FiberMap has interrupted every fiber. A delegation
    // still pending then never started: it waited for a place, or was interrupted before its first step.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(store.list, (all) =>
        Effect.forEach(
          all.filter((d) => d.status === "pending"),
          (d) => abort(d.id, "the Delegations layer was closed before the delegation started"),
          { discard: true }
        ))
    )
    const fibers = yield* FiberMap.make<string, Option.Option<Delegation>, never>()
    // Runs before the FiberMap's finalizer. Delegations cut short by a closing layer are a common wiring
    // mistake (a layer provided per request or per chat turn), so say so once, with the fix.
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(FiberMap.size(fibers), (running) =>
        running === 0 ? Effect.void : Effect.logWarning(
          `the Delegations layer closed with ${running} delegation(s) running; they end failed (interrupted). ` +
            "Build the layer once for the whole host (ManagedRuntime.make, Layer.launch), not per request or chat turn"
        ))
    )

    const refresh = (ids: ReadonlyArray<string>) =>
      refreshQueued(ids, store, settings).pipe(Effect.provide(context))

    const found = (id: string) => (delegation: Option.Option<Delegation>) =>
      Option.match(delegation, {
        onNone: () => Effect.fail(new DelegationNotFound({ id })),
        onSome: Effect.succeed
      })

    const delegate: Delegations["Type"]["delegate"] = (request) =>
      Effect.gen(function*() {
        yield* rbac.authorize("delegate").pipe(
          Effect.tapError((denied) =>
            Effect.flatMap(currentTraceId, (traceId) =>
              audit.log({
                eventType: "rbac",
                action: "rbac.deny",
                resource: String(request.workspaceId),
                outcome: "denied",
                traceId,
                extra: { attempted_action: denied.action, roles: denied.roles }
              })).pipe(bestEffort("audit"))
          )
        )
        const { task, workspaceId } = yield* validate(request, settings.workspaceId)
        const id = yield* newId
        const now = yield* nowUtc
        yield* store.insert(
          new Delegation({
            id,
            workspaceId,
            task: taskPreview(task),
            status: "pending",
            attempts: 0,
            createdAt: now,
            updatedAt: now
          }, { disableValidation: true })
        )
        yield* FiberMap.run(
          fibers,
          id,
          start({ id, target: workspaceId, task })
        ).pipe(
          // A closed layer (or an interrupted caller) means the fiber never started: do not leave it pending.
          Effect.onInterrupt(() => abort(id, "the Delegations layer is closed"))
        )
        return id
      })

    const status: Delegations["Type"]["status"] = (id) =>
      Effect.flatMap(store.get(id), found(id)).pipe(
        Effect.flatMap((delegation) =>
          delegation.status === "queued"
            ? Effect.zipRight(refresh([id]), Effect.flatMap(store.get(id), found(id)))
            : Effect.succeed(delegation)
        )
      )

    const list: Delegations["Type"]["list"] = Effect.flatMap(store.list, (all) => {
      const queued = all.filter((d) => d.status === "queued").map((d) => d.id)
      return queued.length === 0 ? Effect.succeed(all) : Effect.zipRight(refresh(queued), store.list)
    })

    // The fiber's result is the state it left, so a delegation evicted by a small history can still be awaited.
    const fromStore = (id: string) => Effect.flatMap(store.get(id), found(id))
    const awaitFiber = (id: string) =>
      Effect.suspend(() => {
        const fiber = FiberMap.unsafeGet(fibers, id)
        if (Option.isNone(fiber)) return fromStore(id)
        return Effect.flatMap(fiber.value.await, (exit) =>
          Exit.isSuccess(exit) && Option.isSome(exit.value) ? Effect.succeed(exit.value.value) : fromStore(id))
      })
    // A queued delegation is resolved by the platform, not by its fiber: ask the platform on the poll schedule.
    const pollSchedule: Schedule.Schedule<unknown, Delegation> = settings.pollSchedule
    const pollQueued = Schedule.passthrough(pollSchedule)
    const untilResolved = (id: string) =>
      status(id).pipe(Effect.repeat({ schedule: pollQueued, until: (d) => d.status !== "queued" }))
    const await_: Delegations["Type"]["await"] = (id) =>
      Effect.flatMap(awaitFiber(id), (d) => (d.status === "queued" ? untilResolved(id) : Effect.succeed(d)))

    return Delegations.of({
      delegate,
      status,
      list,
      await: await_,
      awaitSettled: awaitFiber,
      running: FiberMap.size(fibers)
    })
  })

/**
 * The service alone: provide `Discovery`, `A2ATransport`, `PlatformMirror`,
 * `Audit` and `Rbac` yourself (live, test, or your own).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerCore = (
  settings: Settings
): Layer.Layer<Delegations, never, Discovery | A2ATransport | PlatformMirror | Audit | Rbac> =>
  Layer.scoped(Delegations, make(settings))

/**
 * Everything `DelegationsLive` reads from the environment, as a plain object.
 * Durations accept Effect duration input (`"5 seconds"`, `Duration.seconds(5)`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** This workspace's id (`WORKSPACE_ID`). */
  readonly workspaceId: string
  /** `PLATFORM_URL`, default `http://host.docker.internal:8080`. */
  readonly platformUrl?: string | undefined
  /** `PLATFORM_TOKEN`: sent as a bearer on every platform call, never to a peer. */
  readonly platformToken?: Redacted.Redacted<string> | string | undefined
  /** `PLATFORM_ORG_ID`: sent as `X-Molecule-Org-Id` on platform calls. */
  readonly orgId?: string | undefined
  /** `DELEGATION_RETRY_ATTEMPTS`: A2A POSTs in total on transport failures (3). */
  readonly retryAttempts?: number | undefined
  /** `DELEGATION_RETRY_DELAY`: the n-th retry waits `retryDelay * n` (5 seconds). */
  readonly retryDelay?: Duration.DurationInput | undefined
  /** `DELEGATION_TIMEOUT`: per A2A request, per discovery, and for following a task (300 seconds). */
  readonly timeout?: Duration.DurationInput | undefined
  /** `DELEGATION_HISTORY`: finished delegations kept (100). */
  readonly history?: number | undefined
  /**
   * `DELEGATION_CONCURRENCY`: delegations running at once; the others wait, `pending`, in order.
   * Unbounded by default. Worth setting near the client's connection count when delegating
   * thousands at once to peers that answer quickly (see the README's performance section).
   */
  readonly concurrency?: number | undefined
  /** `RBAC_ROLES` (`["operator"]`). */
  readonly roles?: ReadonlyArray<string> | undefined
  /** `RBAC_ALLOWED_ACTIONS`: role -> actions; a listed role is decided only by its list. */
  readonly allowedActions?: Permissions | undefined
  /** Replaces the linear retry schedule (retryAttempts/retryDelay are then ignored). */
  readonly retrySchedule?: Schedule.Schedule<unknown, A2ATransportError> | undefined
  /** Replaces the `tasks/get` polling schedule. */
  readonly pollSchedule?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * `A2A_VIA_PLATFORM_PROXY`: send A2A through the platform's proxy
   * (`/workspaces/{id}/a2a`) instead of straight to the discovered URL, so a busy
   * peer's request is queued (202) instead of timing out. Default `false`.
   */
  readonly viaPlatformProxy?: boolean | undefined
  /**
   * `A2A_PROTOCOL`: the A2A version spoken to peers. `auto` (default) chooses per peer from its
   * agent card, else tries 1.0 and switches once to 0.3 on a version answer; `1.0` or `0.3` pins it.
   */
  readonly protocol?: ProtocolSetting | undefined
  /**
   * `AUDIT_LOG_PATH`: append audit events to this file (JSON lines). Needs a
   * `FileSystem` and `Path` in the environment (e.g. `NodeContext.layer`);
   * without one, or without a path, audit events are Effect log lines.
   */
  readonly auditLogPath?: string | undefined
  /**
   * `AUDIT_LOG_LEVEL`: the level of audit log lines when no `AUDIT_LOG_PATH` is set (Debug, so
   * they stay off a console at the default Info level; set Info to see them).
   */
  readonly auditLogLevel?: LogLevel.LogLevel | undefined
  /** Upper bound of each platform call made by the mirror (10 seconds). */
  readonly mirrorTimeout?: Duration.DurationInput | undefined
}

/**
 * Options with every default applied and every value checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedOptions extends Settings {
  /** Bound of each call of the live platform mirror. */
  readonly platformTimeout: Duration.Duration
  readonly viaPlatformProxy: boolean
  readonly protocol: ProtocolSetting
  readonly auditLogPath: string | undefined
  readonly auditLogLevel: LogLevel.LogLevel
  readonly platformUrl: string
  /** No platform URL was configured, so `DEFAULT_PLATFORM_URL` is used (errors then say to set `PLATFORM_URL`). */
  readonly platformUrlIsDefault: boolean
  readonly platformToken: Option.Option<Redacted.Redacted<string>>
  readonly orgId: Option.Option<string>
  readonly roles: ReadonlyArray<string>
  readonly allowedActions: Permissions | undefined
}

/** `PLATFORM_URL` when none is configured. */
export const DEFAULT_PLATFORM_URL = "http://host.docker.internal:8080"

/**
 * A duration option: a plain number means seconds, as in the environment variable; anything
 * else is Effect duration input. A value that is neither is a `ConfigError` naming the setting.
 */
const durationOption = (
  key: string,
  input: Duration.DurationInput | undefined,
  defaultSeconds: number
): Either.Either<Duration.Duration, ConfigError.ConfigError> => {
  if (input === undefined) return Either.right(Duration.seconds(defaultSeconds))
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0
      ? Either.right(Duration.seconds(input))
      : Either.left(ConfigError.InvalidData([key], `must be a number of seconds >= 0, got ${input}`))
  }
  return Either.fromOption(
    Duration.decodeUnknown(input),
    () => ConfigError.InvalidData([key], `must be a duration ("30 seconds", Duration.seconds(30)) or a number of seconds`)
  )
}

/**
 * Applies defaults and checks values; a bad value is a `ConfigError` naming the setting.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveOptions = (options: Options): Either.Either<ResolvedOptions, ConfigError.ConfigError> => {
  const invalid = (key: string, message: string) => Either.left(ConfigError.InvalidData([key], message))
  const platformUrl = (options.platformUrl ?? DEFAULT_PLATFORM_URL).replace(/\/+$/, "")
  const retryAttempts = options.retryAttempts ?? 3
  const history = options.history ?? 100
  const timeout = durationOption("DELEGATION_TIMEOUT", options.timeout, 300)
  if (Either.isLeft(timeout)) return Either.left(timeout.left)
  const retryDelay = durationOption("DELEGATION_RETRY_DELAY", options.retryDelay, 5)
  if (Either.isLeft(retryDelay)) return Either.left(retryDelay.left)
  const platformTimeout = durationOption("mirrorTimeout", options.mirrorTimeout, 10)
  if (Either.isLeft(platformTimeout)) return Either.left(platformTimeout.left)
  if (typeof options.workspaceId !== "string" || options.workspaceId.trim() === "") {
    return invalid("WORKSPACE_ID", "must be a non-empty workspace id")
  }
  if (!isHttpUrl(platformUrl)) return invalid("PLATFORM_URL", `must be an absolute http(s) URL, got ${platformUrl}`)
  if (!Number.isInteger(retryAttempts) || retryAttempts < 1) {
    return invalid("DELEGATION_RETRY_ATTEMPTS", "must be an integer >= 1")
  }
  if (!Number.isInteger(history) || history < 0) return invalid("DELEGATION_HISTORY", "must be an integer >= 0")
  const concurrency = options.concurrency
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    return invalid("DELEGATION_CONCURRENCY", "must be an integer >= 1")
  }
  if (!Duration.greaterThan(timeout.right, Duration.zero)) return invalid("DELEGATION_TIMEOUT", "must be > 0")
  if (!Duration.greaterThan(platformTimeout.right, Duration.zero)) return invalid("mirrorTimeout", "must be > 0")
  const protocol = options.protocol ?? "auto"
  if (!Schema.is(ProtocolSetting)(protocol)) return invalid("A2A_PROTOCOL", `must be auto, 1.0 or 0.3, got ${protocol}`)
  const token = options.platformToken === undefined
    ? Option.none()
    : Option.some(typeof options.platformToken === "string"
      ? Redacted.make(options.platformToken)
      : options.platformToken)
  return Either.right({
    workspaceId: options.workspaceId,
    platformUrl,
    platformUrlIsDefault: options.platformUrl === undefined,
    platformToken: Option.filter(token, (t) => Redacted.value(t) !== ""),
    orgId: Option.filter(Option.fromNullable(options.orgId), (org) => org !== ""),
    history,
    concurrency,
    timeout: timeout.right,
    platformTimeout: platformTimeout.right,
    viaPlatformProxy: options.viaPlatformProxy ?? false,
    protocol,
    auditLogPath: options.auditLogPath === "" ? undefined : options.auditLogPath,
    auditLogLevel: options.auditLogLevel ?? LogLevel.Debug,
    retrySchedule: options.retrySchedule ?? linearRetry(retryAttempts, retryDelay.right),
    pollSchedule: options.pollSchedule ?? defaultPollSchedule,
    roles: options.roles ?? ["operator"],
    allowedActions: options.allowedActions
  })
}

// The file sink when a path is configured and the environment has a FileSystem; the log otherwise.
const auditLayer = (options: ResolvedOptions): Layer.Layer<Audit> => {
  const { auditLogLevel: level, auditLogPath, workspaceId } = options
  if (auditLogPath === undefined) return AuditLog.layer({ workspaceId, level })
  return Layer.unwrapEffect(Effect.gen(function*() {
    const fs = yield* Effect.serviceOption(FileSystem.FileSystem)
    const path = yield* Effect.serviceOption(Path.Path)
    if (Option.isSome(fs) && Option.isSome(path)) {
      return AuditFile.layer({ path: auditLogPath, workspaceId }).pipe(
        Layer.provide(Layer.merge(Layer.succeed(FileSystem.FileSystem, fs.value), Layer.succeed(Path.Path, path.value)))
      )
    }
    yield* Effect.logWarning(
      "AUDIT_LOG_PATH is set but no FileSystem/Path is provided (add NodeContext.layer); audit events go to the log"
    )
    return AuditLog.layer({ workspaceId, level })
  }))
}

/**
 * The live stack from resolved options: HTTP discovery, A2A and mirror over the
 * host's `HttpClient`, audit to the Effect log, static RBAC.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerResolved = (options: ResolvedOptions): Layer.Layer<Delegations, never, HttpClient.HttpClient> =>
  // The live mirror bounds each call itself, so the program adds no second timer.
  layerCore({ ...options, mirrorTimeout: undefined }).pipe(
    Layer.provide(Layer.mergeAll(
      options.viaPlatformProxy
        ? DiscoveryProxy.layer(options)
        : DiscoveryHttp.layer({ ...options, timeout: options.timeout }),
      A2ATransportHttp.layer({
        workspaceId: options.workspaceId,
        timeout: options.timeout,
        platform: options,
        protocol: options.protocol
      }),
      PlatformMirrorHttp.layer({ ...options, timeout: options.platformTimeout }),
      auditLayer(options),
      RbacStatic.layer({ roles: options.roles, allowedActions: options.allowedActions })
    ))
  )

/**
 * The live stack from a plain options object (for hosts that do not configure
 * through the environment), optionally with their own retry `Schedule`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Delegations, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(resolveOptions(options), layerResolved))

/**
 * Reads the options from `Config` (environment variables by default).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  platformUrl: Config.option(Config.string("PLATFORM_URL")).pipe(Config.map(Option.getOrUndefined)),
  workspaceId: Config.nonEmptyString("WORKSPACE_ID"),
  platformToken: Config.option(Config.redacted("PLATFORM_TOKEN")).pipe(Config.map(Option.getOrUndefined)),
  orgId: Config.option(Config.string("PLATFORM_ORG_ID")).pipe(Config.map(Option.getOrUndefined)),
  retryAttempts: Config.integer("DELEGATION_RETRY_ATTEMPTS").pipe(Config.withDefault(3)),
  retryDelay: Config.number("DELEGATION_RETRY_DELAY").pipe(
    Config.validate({ message: "must be a number of seconds >= 0", validation: (n) => n >= 0 }),
    Config.withDefault(5),
    Config.map(Duration.seconds)
  ),
  timeout: Config.number("DELEGATION_TIMEOUT").pipe(
    Config.validate({ message: "must be a number of seconds > 0", validation: (n) => n > 0 }),
    Config.withDefault(300),
    Config.map(Duration.seconds)
  ),
  history: Config.integer("DELEGATION_HISTORY").pipe(Config.withDefault(100)),
  concurrency: Config.option(Config.integer("DELEGATION_CONCURRENCY")).pipe(Config.map(Option.getOrUndefined)),
  viaPlatformProxy: Config.boolean("A2A_VIA_PLATFORM_PROXY").pipe(Config.withDefault(false)),
  protocol: Config.literal("auto", "1.0", "0.3")("A2A_PROTOCOL").pipe(Config.withDefault("auto" as const)),
  auditLogPath: AuditFile.pathConfig.pipe(Config.map(Option.getOrUndefined)),
  auditLogLevel: Config.option(Config.logLevel("AUDIT_LOG_LEVEL")).pipe(Config.map(Option.getOrUndefined)),
  rbac: RbacStatic.config
}).pipe(Config.map(({ rbac, ...rest }) => ({ ...rest, roles: rbac.roles, allowedActions: rbac.allowedActions })))

/**
 * The live stack configured from the environment (see the README's configuration table).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<Delegations, ConfigError.ConfigError, HttpClient.HttpClient> = Layer
  .unwrapEffect(
    Effect.flatMap(config, (options) => Effect.map(resolveOptions(options), layerResolved))
  )
