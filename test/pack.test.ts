/**
 * The published package, as a user gets it: `npm pack` (with its `prepack` build)
 * on a copy of this checkout, the tarball installed into fresh apps under the OS
 * temp directory with only the packages the README's Install section lists for
 * each entry point, then every entry point imported with `node` and type-checked
 * with `tsc` (strict, NodeNext, `skipLibCheck: false`).
 *
 * App A adds the packages step by step: the core's, then `@effect/ai`, then
 * `@effect/platform-node`. Each entry point is loaded and checked as soon as its
 * packages are in, and the ones whose packages are still missing must fail to
 * load, so each step proves an entry point needs no more than what is installed
 * so far. App B has the core's packages and the OpenTelemetry line only.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const tsc = Path.join(Path.dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")

const manifest = JSON.parse(await Fs.readFile(Path.join(root, "package.json"), "utf8")) as {
  readonly name: string
  readonly peerDependencies: Readonly<Record<string, string>>
}
const readme = await Fs.readFile(Path.join(root, "README.md"), "utf8")
/** The README's Install section, up to the next heading. */
const install = readme.slice(readme.indexOf("## Install"), readme.indexOf("\n## ", readme.indexOf("## Install") + 1))

/** `name@range`, the range from the peer dependencies, i.e. as the README's Install pins it. */
const pinned = (name: string): string => {
  const range = manifest.peerDependencies[name]
  if (range === undefined) throw new Error(`${name} is not a peer dependency`)
  return `${name}@${range}`
}

const core = ["effect", "@effect/platform", "@effect/experimental"].map(pinned)
const ai = ["@effect/ai"].map(pinned)
const node = ["@effect/platform-node"].map(pinned)
const otel = [
  "@effect/opentelemetry",
  "@opentelemetry/exporter-trace-otlp-http",
  "@opentelemetry/exporter-metrics-otlp-http",
  "@opentelemetry/sdk-trace-base",
  "@opentelemetry/sdk-metrics"
].map(pinned)
/** The SQL stores' lines: `@effect/sql` alone (`./sql`), with libSQL (`./sqlite`), with pg (`./postgres`). */
const sql = ["@effect/sql"].map(pinned)
const sqlLibsql = ["@effect/sql", "@effect/sql-libsql", "@libsql/client"].map(pinned)
const sqlPg = ["@effect/sql", "@effect/sql-pg"].map(pinned)
/** With skipLibCheck off, `@effect/sql-pg`'s declarations need pg's types. */
const pgTypes = ["@types/pg@^8"]
/** TypeScript without `skipLibCheck`: Node's types, and `ws`'s for `@effect/platform-node`'s declarations. */
const types = ["@types/node@^20", "@types/ws@^8"]

/** A small typed use of each entry point, through the API the README documents. */
const usage: Readonly<Record<string, string>> = {
  ".": `import { Delegations, DelegationsLayer, DelegationsLive } from "effect-a2a-delegation"
import { Effect } from "effect"
export const list = Effect.flatMap(Delegations, (delegations) => delegations.list)
export const live = DelegationsLive
export const poll = DelegationsLayer.defaultPollSchedule
`,
  "./ai": `import { DelegationToolkit, DelegationToolkitLive } from "effect-a2a-delegation/ai"
export const toolkit = DelegationToolkit
export const handlers = DelegationToolkitLive.layer
`,
  "./node": `import { Delegations } from "effect-a2a-delegation"
import { NodeDelegationsLive, NodeHttpClientPooled } from "effect-a2a-delegation/node"
import type { DelegationStoreError } from "effect-a2a-delegation"
import type { ConfigError } from "effect"
import { Effect } from "effect"
export const running: Effect.Effect<number, ConfigError.ConfigError | DelegationStoreError> = Effect.flatMap(Delegations, (d) => d.running).pipe(
  Effect.provide(NodeDelegationsLive)
)
export const client = NodeHttpClientPooled.layer({ connections: 8 })
`,
  "./testing": `import { LocalPeer, LocalPlatform } from "effect-a2a-delegation/testing"
export const platform = LocalPlatform.make
export const peer = LocalPeer.make({ behaviour: { reply: (task: string) => task } })
`,
  "./sql": `import { DelegationStoreSql } from "effect-a2a-delegation/sql"
export const store = DelegationStoreSql.layer({ history: 100 })
`,
  "./sqlite": `import { DelegationStoreSqlite } from "effect-a2a-delegation/sqlite"
import type { DelegationStore, DelegationStoreError } from "effect-a2a-delegation"
import type { Layer } from "effect"
export const store: Layer.Layer<DelegationStore, DelegationStoreError> = DelegationStoreSqlite.layer({ filename: "d.db", history: 100 })
`,
  "./postgres": `import { DelegationStorePg } from "effect-a2a-delegation/postgres"
import type { DelegationStore, DelegationStoreError } from "effect-a2a-delegation"
import type { Layer } from "effect"
export const store: Layer.Layer<DelegationStore, DelegationStoreError> = DelegationStorePg.layer({ url: "postgres://localhost/app", history: 100 })
`,
  "./otel": `import { OtelNode } from "effect-a2a-delegation/otel"
import type { ConfigError, Layer } from "effect"
export const fromEnv: Layer.Layer<never, ConfigError.ConfigError> = OtelNode.layerConfig("app")
export const direct = OtelNode.layer({ endpoint: "http://localhost:4318", serviceName: "app" })
`
}

/** What each entry point must export at run time. */
const exported: Readonly<Record<string, ReadonlyArray<string>>> = {
  ".": ["Delegations", "DelegationsLayer", "DelegationsLive", "DelegationStore", "DelegationStoreMemory"],
  "./ai": ["DelegationToolkit", "DelegationToolkitLive"],
  "./node": ["NodeDelegationsLive", "NodeHttpClientPooled"],
  "./testing": ["LocalPeer", "LocalPlatform"],
  "./otel": ["OtelNode"],
  "./sql": ["DelegationStoreSql"],
  "./sqlite": ["DelegationStoreSqlite", "DelegationStoreSql"],
  "./postgres": ["DelegationStorePg", "DelegationStoreSql"]
}

const specifier = (entry: string): string => entry === "." ? manifest.name : `${manifest.name}/${entry.slice(2)}`

/** The parent `npm` run's per-project settings (`npm test` exports them) must not steer the child's. */
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([key]) =>
    !/^npm_(config_local_prefix|config_prefix|package_|lifecycle_|command$)/i.test(key)
  )
)

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, extraEnv: NodeJS.ProcessEnv = {}) =>
  new Promise<Ran>((resolve) => {
    execFile(command, args, { cwd, env: { ...env, ...extraEnv }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
  })

const ok = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<string> => {
  const ran = await run(command, args, cwd)
  if (ran.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} (in ${cwd}) exited ${ran.code}\n${ran.stdout}\n${ran.stderr}`)
  }
  return ran.stdout
}

const npmInstall = (app: string, specs: ReadonlyArray<string>) =>
  ok("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...specs], app)

/** How `import(specifier)` ended in the app: the module's export names, or the error's code and message. */
type Loaded =
  | { readonly names: ReadonlyArray<string> }
  | { readonly code: string; readonly message: string }

const loadScript = `
const out = {}
for (const spec of JSON.parse(process.env.SPECIFIERS)) {
  try {
    const module = spec.endsWith(".json") ? await import(spec, { with: { type: "json" } }) : await import(spec)
    out[spec] = { names: Object.keys(module).sort() }
  } catch (error) {
    out[spec] = { code: String(error.code), message: String(error.message) }
  }
}
console.log(JSON.stringify(out))
`

const load = async (app: string, specifiers: ReadonlyArray<string>): Promise<Record<string, Loaded>> => {
  const ran = await run(process.execPath, ["--input-type=module", "-e", loadScript], app, {
    SPECIFIERS: JSON.stringify(specifiers)
  })
  if (ran.code !== 0) throw new Error(`node exited ${ran.code}\n${ran.stderr}`)
  return JSON.parse(ran.stdout) as Record<string, Loaded>
}

/**
 * One `node` run: each of `loads` loads and has its exports; each entry point of
 * `missing` fails to load for lack of one of its packages (not installed yet).
 */
const expectImports = async (
  app: string,
  loads: ReadonlyArray<string>,
  missing: ReadonlyArray<readonly [entries: ReadonlyArray<string>, packages: ReadonlyArray<string>]> = []
) => {
  const entries = [...loads, ...missing.flatMap(([entries]) => entries)]
  const loaded = await load(app, entries.map(specifier))
  for (const entry of loads) {
    const result = loaded[specifier(entry)]
    expect(result, `import("${specifier(entry)}"): ${JSON.stringify(result)}`).toHaveProperty("names")
    expect((result as { readonly names: ReadonlyArray<string> }).names).toEqual(
      expect.arrayContaining([...exported[entry]])
    )
  }
  for (const [entries, packages] of missing) {
    const names = packages.map((spec) => spec.slice(0, spec.lastIndexOf("@")))
    for (const entry of entries) {
      const result = loaded[specifier(entry)]
      expect(result, `import("${specifier(entry)}")`).toMatchObject({ code: "ERR_MODULE_NOT_FOUND" })
      const message = (result as { readonly message: string }).message
      expect(names.some((name) => message.includes(`'${name}'`)), message).toBe(true)
    }
  }
}

/** `tsc` over a file using the entry points, strict, NodeNext, no `skipLibCheck`; its diagnostics. */
const typeCheck = async (app: string, entries: ReadonlyArray<string>): Promise<string> => {
  await Fs.writeFile(Path.join(app, "check.ts"), entries.map((entry) => usage[entry]).join("\n"))
  const ran = await run(process.execPath, [tsc, "-p", "tsconfig.json"], app)
  return ran.code === 0 ? "" : `${ran.stdout}${ran.stderr}`
}

const tsconfig = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    // Every package's declarations are checked; only TypeScript's own lib.*.d.ts are not (half the time).
    skipLibCheck: false,
    skipDefaultLibCheck: true,
    noEmit: true,
    // Later steps re-check only what changed; a file that failed is always checked again.
    incremental: true,
    tsBuildInfoFile: "check.tsbuildinfo"
  },
  files: ["check.ts"]
}

const newApp = async (dir: string, name: string): Promise<string> => {
  const app = Path.join(dir, name)
  await Fs.mkdir(app)
  await Fs.writeFile(Path.join(app, "package.json"), JSON.stringify({ name, private: true, type: "module" }))
  await Fs.writeFile(Path.join(app, "tsconfig.json"), JSON.stringify(tsconfig))
  return app
}

describe("the packed library", () => {
  let dir = ""
  let tarball = ""

  beforeAll(async () => {
    dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "effect-a2a-delegation-pack-"))
    // Pack a copy, so this run's build never races another one's in the checkout's dist/.
    const copy = Path.join(dir, "package")
    const skipped = new Set(["node_modules", ".git", "dist", "dist-bench", "coverage", ".scratch"])
    await Fs.cp(root, copy, {
      recursive: true,
      filter: (source) => Path.dirname(source) !== Path.resolve(root) || !skipped.has(Path.basename(source))
    })
    await Fs.symlink(Path.join(root, "node_modules"), Path.join(copy, "node_modules"), "dir")
    const packed = JSON.parse(await ok("npm", ["pack", "--json", "--pack-destination", dir], copy)) as ReadonlyArray<{
      readonly filename: string
      readonly files: ReadonlyArray<{ readonly path: string }>
    }>
    const files = packed[0]!.files.map((file) => file.path)
    expect(files).toEqual(expect.arrayContaining(["LICENSE", "README.md", "package.json", "dist/otel.js", "dist/otel.d.ts"]))
    expect(files.filter((file) => file.startsWith("test/") || file.startsWith("bench/"))).toEqual([])
    tarball = Path.join(dir, packed[0]!.filename)
  }, 240_000)

  afterAll(async () => {
    if (dir !== "") await Fs.rm(dir, { recursive: true, force: true })
  })

  it("the README's Install section pins every package the test installs", () => {
    for (const spec of [...core, ...ai, ...node, ...otel, ...sqlLibsql, ...sqlPg, ...types, ...pgTypes]) {
      expect(install).toContain(spec)
    }
    expect(install).toContain("npm pack")
  })

  it.concurrent("'.', './ai', './node' and './testing' each load and type-check with only their Install lines", async () => {
    const app = await newApp(dir, "staged")

    await npmInstall(app, [tarball, ...core, ...types])
    await expectImports(app, ["."], [[["./ai"], ai], [["./node", "./testing"], node], [["./otel"], otel]])
    expect(await typeCheck(app, ["."])).toBe("")

    await npmInstall(app, ai)
    await expectImports(app, ["./ai"], [[["./node", "./testing"], node], [["./otel"], otel]])
    expect(await typeCheck(app, ["./ai"])).toBe("")

    await npmInstall(app, node)
    await expectImports(app, ["./node", "./testing"], [[["./otel"], otel]])
    expect(await typeCheck(app, ["./node", "./testing"])).toBe("")

    // Only the documented entry points (and package.json) resolve; internals do not.
    const deep = ["dist/index.js", "dist/layers/OtelNode.js", "dist/layers/internal/http.js", "layers/OtelNode"]
    const loaded = await load(app, [...deep.map((path) => `${manifest.name}/${path}`), `${manifest.name}/package.json`])
    for (const path of deep) {
      expect(loaded[`${manifest.name}/${path}`], path).toMatchObject({ code: "ERR_PACKAGE_PATH_NOT_EXPORTED" })
    }
    expect(loaded[`${manifest.name}/package.json`]).toHaveProperty("names", ["default"])

    // The SQL stores, one line at a time: each entry point loads once its line is in. (`@effect/sql` itself
    // may already be there: @effect/platform-node's own peers bring it.)
    await expectImports(app, [], [[["./sqlite"], sqlLibsql], [["./postgres"], sqlPg]])
    await npmInstall(app, sql)
    await expectImports(app, ["./sql"], [[["./sqlite"], sqlLibsql], [["./postgres"], sqlPg]])
    expect(await typeCheck(app, ["./sql"])).toBe("")
    await npmInstall(app, sqlLibsql)
    await expectImports(app, ["./sqlite"], [[["./postgres"], sqlPg]])
    expect(await typeCheck(app, ["./sqlite"])).toBe("")
    await npmInstall(app, [...sqlPg, ...pgTypes])
    await expectImports(app, ["./postgres"])
    expect(await typeCheck(app, ["./postgres"])).toBe("")
  }, 360_000)

  it.concurrent("'./otel' loads and type-checks with the core's and the OpenTelemetry Install lines only", async () => {
    const app = await newApp(dir, "otel")
    await npmInstall(app, [tarball, ...core, ...otel, ...types])
    await expectImports(app, ["./otel"], [[["./ai"], ai], [["./node", "./testing"], node]])
    expect(await typeCheck(app, ["./otel"])).toBe("")
  }, 360_000)
})
