/**
 * The benchmark's platform + peer, in its own process: plain `node:http`, keep-alive,
 * every answer at once. Prints `{"port": n}` on stdout when listening.
 *
 * It counts the requests it receives by route (`GET /__counts` reads them and is not counted), so that a
 * round can tell how many requests a delegation costs, and work that saves requests shows up.
 */
import * as Http from "node:http"
import type { Route } from "./shared.js"
import { COUNTS_PATH, noRequests } from "./shared.js"

const json = (res: Http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

/** The route of a request, from its method and path alone, so it is counted before its body is read. */
const routeOf = (method: string | undefined, url: string): Route => {
  if (method === "POST" && url === "/a2a") return "a2a"
  if (method === "GET" && url === "/.well-known/agent-card.json") return "card"
  if (method === "GET" && url.startsWith("/registry/discover/")) return "discover"
  if (url.startsWith("/workspaces/")) {
    // The platform's A2A proxy for a workspace: `/workspaces/{id}/a2a`, whatever the method.
    if (url.endsWith("/a2a")) return "proxy"
    if (method === "POST" && url.endsWith("/delegations/record")) return "record"
    if (method === "POST" && url.endsWith("/update")) return "update"
    if (method === "POST" && url.endsWith("/notify")) return "notify"
    if (method === "POST" && url.endsWith("/delegate")) return "delegate"
    if (method === "GET" && url.endsWith("/delegations")) return "list"
  }
  return "other"
}

// One integer per route: counting costs the server next to nothing, so every side is served alike.
const counts = noRequests()

const server = Http.createServer((req, res) => {
  const url = req.url ?? "/"
  if (req.method === "GET" && url === COUNTS_PATH) return json(res, 200, counts)
  const route = routeOf(req.method, url)
  counts[route]++
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    switch (route) {
      // A peer with the SDK's v0.3 compatibility layer: A2A 1.0 with the header (the library, which reads
      // the card below once), v0.3 without (the floor's message/send).
      case "a2a": {
        const request = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: unknown }
        return json(res, 200, {
          jsonrpc: "2.0",
          id: request.id ?? null,
          result: req.headers["a2a-version"] === "1.0"
            ? { message: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "ok", mediaType: "text/plain" }] } }
            : { kind: "message", role: "agent", messageId: "m", parts: [{ kind: "text", text: "ok" }] }
        })
      }
      case "card": {
        const jsonRpc = (protocolVersion: string) => ({
          url: `http://127.0.0.1:${port}/a2a`,
          protocolBinding: "JSONRPC",
          tenant: "",
          protocolVersion
        })
        return json(res, 200, { name: "bench-peer", supportedInterfaces: [jsonRpc("1.0"), jsonRpc("0.3")] })
      }
      case "discover": {
        const id = decodeURIComponent(url.slice("/registry/discover/".length))
        return json(res, 200, { id, url: `http://127.0.0.1:${port}/a2a`, name: id })
      }
      case "record":
        return json(res, 202, { status: "recorded" })
      case "update":
        return json(res, 200, { status: "completed" })
      case "notify":
        return json(res, 200, { status: "sent" })
      case "list":
        return json(res, 200, [])
      // Platform dispatch and the proxy are counted but not served: no side of the bench uses them yet.
      default:
        return json(res, 404, { error: "not found" })
    }
  })
})
server.keepAliveTimeout = 30_000
let port = 0
server.listen(0, "127.0.0.1", () => {
  port = (server.address() as { port: number }).port
  process.stdout.write(`${JSON.stringify({ port })}\n`)
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
process.on("disconnect", () => process.exit(0))
