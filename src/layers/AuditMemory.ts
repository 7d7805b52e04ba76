/**
 * An in-memory audit sink for tests: keeps every record, in order.
 *
 * @since 0.1.0
 */
import { Chunk, Context, DateTime, Effect, Layer, Ref } from "effect"
import type { AuditRecord } from "../services/Audit.js"
import { Audit, makeRecord } from "../services/Audit.js"

/**
 * Read access to what the memory sink received.
 *
 * @since 0.1.0
 * @category tags
 */
export class AuditMemory extends Context.Tag("effect-a2a-delegation/AuditMemory")<AuditMemory, {
  readonly records: Effect.Effect<ReadonlyArray<AuditRecord>>
}>() {}

/**
 * Provides `Audit` and `AuditMemory` over one shared buffer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly workspaceId: string }): Layer.Layer<Audit | AuditMemory> =>
  Layer.effectContext(Effect.gen(function*() {
    const records = yield* Ref.make(Chunk.empty<AuditRecord>())
    return Context.make(Audit, {
      log: (event) =>
        Effect.flatMap(DateTime.now, (now) => Ref.update(records, Chunk.append(makeRecord(options.workspaceId, event, now))))
    }).pipe(Context.add(AuditMemory, { records: Effect.map(Ref.get(records), Chunk.toReadonlyArray) }))
  }))
