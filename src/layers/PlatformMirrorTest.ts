/**
 * An in-memory platform for tests: keeps every call, serves scripted list rows,
 * and can be switched to failing.
 *
 * @since 0.1.0
 */
import { Chunk, Context, Effect, Layer, Ref } from "effect"
import type {
  NotifyDelegation,
  PlatformDelegate,
  PlatformDelegated,
  PlatformDelegationRow,
  RecordDelegation,
  UpdateDelegation
} from "../services/PlatformMirror.js"
import { PlatformError, PlatformMirror } from "../services/PlatformMirror.js"

/**
 * Inspection and control of the in-memory platform.
 *
 * @since 0.1.0
 * @category tags
 */
export class PlatformMirrorTest extends Context.Tag("effect-a2a-delegation/PlatformMirrorTest")<PlatformMirrorTest, {
  readonly records: Effect.Effect<ReadonlyArray<RecordDelegation>>
  readonly updates: Effect.Effect<ReadonlyArray<UpdateDelegation>>
  readonly notifications: Effect.Effect<ReadonlyArray<NotifyDelegation>>
  readonly listCalls: Effect.Effect<number>
  /** Every `delegate` call, in order. */
  readonly delegations: Effect.Effect<ReadonlyArray<PlatformDelegate>>
  /**
   * How `delegate` answers from now on (default: `delegated`, with the delegation id `platform-<key>`,
   * and an idempotent hit for a key seen before).
   */
  readonly setDelegateReply: (reply: (request: PlatformDelegate, seen: boolean) => PlatformDelegated) => Effect.Effect<void>
  /** Rows served by `list` from now on (newest first, like the platform). */
  readonly setRows: (rows: ReadonlyArray<PlatformDelegationRow>) => Effect.Effect<void>
  /** Makes every call fail (or succeed again with `false`). */
  readonly setFailing: (failing: boolean) => Effect.Effect<void>
}>() {}

interface State {
  readonly records: Chunk.Chunk<RecordDelegation>
  readonly updates: Chunk.Chunk<UpdateDelegation>
  readonly notifications: Chunk.Chunk<NotifyDelegation>
  readonly rows: ReadonlyArray<PlatformDelegationRow>
  readonly listCalls: number
  readonly failing: boolean
  readonly delegations: Chunk.Chunk<PlatformDelegate>
  readonly delegateReply: (request: PlatformDelegate, seen: boolean) => PlatformDelegated
}

const defaultDelegateReply = (request: PlatformDelegate, seen: boolean): PlatformDelegated => ({
  delegationId: `platform-${request.idempotencyKey}`,
  status: seen ? "dispatched" : "delegated",
  idempotentHit: seen
})

/**
 * Provides `PlatformMirror` and `PlatformMirrorTest`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: { readonly rows?: ReadonlyArray<PlatformDelegationRow>; readonly failing?: boolean } = {}
): Layer.Layer<PlatformMirror | PlatformMirrorTest> =>
  Layer.effectContext(Effect.gen(function*() {
    const state = yield* Ref.make<State>({
      records: Chunk.empty(),
      updates: Chunk.empty(),
      notifications: Chunk.empty(),
      rows: options.rows ?? [],
      listCalls: 0,
      failing: options.failing ?? false,
      delegations: Chunk.empty(),
      delegateReply: defaultDelegateReply
    })
    const call = (operation: PlatformError["operation"], f: (state: State) => State) =>
      Ref.modify(state, (current) => [current.failing, f(current)] as const).pipe(
        Effect.flatMap((failing) =>
          failing
            ? Effect.fail(new PlatformError({ operation, reason: "Transport", detail: "platform unreachable" }))
            : Effect.void
        )
      )
    const read = <A>(f: (state: State) => A) => Effect.map(Ref.get(state), f)
    return Context.make(PlatformMirror, {
      record: (request) => call("record", (s) => ({ ...s, records: Chunk.append(s.records, request) })),
      update: (request) => call("update", (s) => ({ ...s, updates: Chunk.append(s.updates, request) })),
      notify: (request) => call("notify", (s) => ({ ...s, notifications: Chunk.append(s.notifications, request) })),
      list: call("list", (s) => ({ ...s, listCalls: s.listCalls + 1 })).pipe(Effect.zipRight(read((s) => s.rows))),
      delegate: (request) =>
        Effect.flatMap(
          read((s) => Chunk.some(s.delegations, (seen) => seen.idempotencyKey === request.idempotencyKey)),
          (seen) =>
            call("delegate", (s) => ({ ...s, delegations: Chunk.append(s.delegations, request) })).pipe(
              Effect.zipRight(read((s) => s.delegateReply(request, seen)))
            )
        )
    }).pipe(Context.add(PlatformMirrorTest, {
      records: read((s) => Chunk.toReadonlyArray(s.records)),
      updates: read((s) => Chunk.toReadonlyArray(s.updates)),
      notifications: read((s) => Chunk.toReadonlyArray(s.notifications)),
      listCalls: read((s) => s.listCalls),
      delegations: read((s) => Chunk.toReadonlyArray(s.delegations)),
      setDelegateReply: (reply) => Ref.update(state, (s) => ({ ...s, delegateReply: reply })),
      setRows: (rows) => Ref.update(state, (s) => ({ ...s, rows })),
      setFailing: (failing) => Ref.update(state, (s) => ({ ...s, failing }))
    }))
  }))
