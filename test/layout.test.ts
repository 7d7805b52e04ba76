/**
 * The layout of `src` follows the data: every file sits in a layer, and imports only run down
 * (or across, within its layer); the import graph has no cycle.
 *
 * Each `.ts` file under `src` is read with `node:fs` and parsed (syntax only) with TypeScript, so
 * every relative `import ... from`, `export ... from` (`export *`, `export * as`, `export type`),
 * side-effect `import "..."` and `import("...")` is seen, type-only ones included.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const srcRoot = fileURLToPath(new URL("../src", import.meta.url))

/**
 * The layers, bottom to top. A file belongs to the layer of its longest matching entry (a folder
 * ending in `/`, or a file); a file may import from its own layer and the ones below it.
 */
const LAYERS: ReadonlyArray<{ readonly name: string; readonly paths: ReadonlyArray<string> }> = [
  { name: "contracts", paths: ["services/"] },
  { name: "helpers", paths: ["internal/"] },
  { name: "steps", paths: ["programs/"] },
  { name: "service engine", paths: ["programs/service/"] },
  { name: "implementations", paths: ["layers/", "testing/"] },
  {
    name: "wiring and entry points",
    paths: [
      "layers/DelegationsLayer.ts",
      "index.ts",
      "ai.ts",
      "node.ts",
      "otel.ts",
      "sql.ts",
      "sqlite.ts",
      "postgres.ts",
      "testing/index.ts"
    ]
  }
]

/** The files of `src`, relative to it, with `/` separators. */
const listFiles = (dir: string): ReadonlyArray<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = Path.join(dir, entry.name)
    if (entry.isDirectory()) return listFiles(full)
    return entry.isFile() && entry.name.endsWith(".ts") ? [Path.relative(srcRoot, full).split(Path.sep).join("/")] : []
  })

/** The specifiers of every import and re-export in `text`. */
const specifiersOf = (file: string, text: string): ReadonlyArray<string> => {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const found: Array<string> = []
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      if (ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text)
    } else if (
      ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      found.push(node.moduleReference.expression.text)
    } else if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined && ts.isStringLiteral(node.arguments[0])
    ) {
      found.push(node.arguments[0].text)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** The `src` file a relative specifier names (`./x.js` is `./x.ts`). */
const resolve = (from: string, specifier: string): string =>
  Path.posix.normalize(Path.posix.join(Path.posix.dirname(from), specifier.replace(/\.js$/, ".ts")))

const layerOf = (file: string): number => {
  let best = -1
  let bestLength = -1
  LAYERS.forEach((layer, index) => {
    for (const path of layer.paths) {
      const matches = path.endsWith("/") ? file.startsWith(path) : file === path
      if (matches && path.length > bestLength) {
        best = index
        bestLength = path.length
      }
    }
  })
  return best
}

const files = listFiles(srcRoot).slice().sort()
const graph = new Map<string, ReadonlyArray<string>>(
  files.map((file) => [
    file,
    [
      ...new Set(
        specifiersOf(file, Fs.readFileSync(Path.join(srcRoot, file), "utf8"))
          .filter((specifier) => specifier.startsWith("./") || specifier.startsWith("../"))
          .map((specifier) => resolve(file, specifier))
      )
    ].sort()
  ])
)

/** The strongly connected components of more than one file (or a file importing itself), Tarjan's way. */
const cycles = (): ReadonlyArray<ReadonlyArray<string>> => {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<ReadonlyArray<string>> = []
  let next = 0
  const connect = (file: string): void => {
    index.set(file, next)
    low.set(file, next)
    next++
    stack.push(file)
    onStack.add(file)
    for (const target of graph.get(file) ?? []) {
      if (!graph.has(target)) continue
      if (!index.has(target)) {
        connect(target)
        low.set(file, Math.min(low.get(file)!, low.get(target)!))
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, index.get(target)!))
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: Array<string> = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== file)
      if (component.length > 1 || (graph.get(file) ?? []).includes(file)) found.push(component.sort())
    }
  }
  for (const file of files) if (!index.has(file)) connect(file)
  return found
}

/** One shortest cycle through the first file of a component (breadth first, within it). */
const shortestCycle = (component: ReadonlyArray<string>): ReadonlyArray<string> => {
  const start = component[0]!
  const inside = new Set(component)
  const previous = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const file = queue.shift()!
    for (const target of graph.get(file) ?? []) {
      if (!inside.has(target)) continue
      if (target === start) {
        const path = [file]
        while (path[0] !== start) path.unshift(previous.get(path[0]!)!)
        return [...path, start]
      }
      if (!previous.has(target)) {
        previous.set(target, file)
        queue.push(target)
      }
    }
  }
  return [start]
}

describe("the layout of src", () => {
  it("sees the files and their imports", () => {
    expect(files.length).toBeGreaterThan(50)
    expect(graph.get("index.ts")).toContain("layers/DelegationsLayer.ts")
    // A relative import that names no file of src would drop an edge unseen.
    const dangling = [...graph].flatMap(([file, targets]) =>
      targets.filter((target) => !graph.has(target)).map((target) => `${file} -> ${target}`)
    )
    expect(dangling).toEqual([])
  })

  it("places every file in a layer", () => {
    expect(files.filter((file) => layerOf(file) < 0)).toEqual([])
  })

  it("has no import cycle", () => {
    const report = cycles().map((component) =>
      `${component.length} files: ${component.join(", ")}\n  e.g. ${shortestCycle(component).join(" -> ")}`
    )
    expect(report, `import cycles:\n${report.join("\n")}`).toEqual([])
  })

  it("imports nothing from a higher layer", () => {
    const upward = [...graph].flatMap(([file, targets]) =>
      targets
        .filter((target) => graph.has(target) && layerOf(target) > layerOf(file))
        .map((target) =>
          `${file} (${LAYERS[layerOf(file)]?.name}) -> ${target} (${LAYERS[layerOf(target)]?.name})`
        )
    )
    expect(upward, `imports from a higher layer:\n${upward.join("\n")}`).toEqual([])
  })
})
