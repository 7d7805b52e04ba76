/**
 * A scripted RBAC for tests: allow or deny every action, and count the checks.
 *
 * @since 0.1.0
 */
import { Chunk, Context, Effect, Layer, Ref } from "effect"
import { AccessDenied, Rbac } from "../services/Rbac.js"

/**
 * The actions that were checked, in order.
 *
 * @since 0.1.0
 * @category tags
 */
export class RbacTest extends Context.Tag("effect-a2a-delegation/RbacTest")<RbacTest, {
  readonly checked: Effect.Effect<ReadonlyArray<string>>
}>() {}

/**
 * Provides `Rbac` (with the given decision) and `RbacTest`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: { readonly allow: boolean; readonly roles?: ReadonlyArray<string> | undefined }
): Layer.Layer<Rbac | RbacTest> =>
  Layer.effectContext(Effect.gen(function*() {
    const checked = yield* Ref.make(Chunk.empty<string>())
    const roles = options.roles ?? ["operator"]
    return Context.make(Rbac, {
      roles,
      authorize: (action) =>
        Ref.update(checked, Chunk.append(action)).pipe(
          Effect.zipRight(options.allow ? Effect.void : Effect.fail(new AccessDenied({ action, roles })))
        )
    }).pipe(Context.add(RbacTest, { checked: Effect.map(Ref.get(checked), Chunk.toReadonlyArray) }))
  }))
