/**
 * The demo's delegation table as pure functions: rows, a terminal width and a
 * colour flag in, printable lines out. No line is ever wider than the width,
 * so the terminal never wraps one and a redraw can count screen rows exactly.
 */

/** One row of the table, already reduced to text. */
export interface TableRow {
  readonly task: string
  readonly peer: string
  /** The A2A version spoken to the peer ("1.0", "0.3"); shown after its name, as `fast·1.0`. */
  readonly version?: string | undefined
  /** pending, in_progress, queued, completed, failed, cancelled, denied or invalid. */
  readonly state: string
  readonly tries?: number | undefined
  /** Already formatted, e.g. `1.7s`. */
  readonly elapsed?: string | undefined
  /** The result, the error or the queue message. */
  readonly detail?: string | undefined
  /** The proxy's queue depth (queued rows). */
  readonly queueDepth?: number | undefined
  /** Lines the detail may take; by the state when absent (3 for failed, denied and invalid, 2 for queued, else 1). */
  readonly detailLines?: number | undefined
}

export interface TableOptions {
  /** Terminal columns; no line will be wider. */
  readonly width: number
  /** Screen rows the frame may use; a taller table loses continuation lines first, then rows. */
  readonly height?: number | undefined
  readonly color: boolean
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g

export const stripAnsi = (text: string): string => text.replace(ANSI, "")

// Columns a code point takes in a terminal: combining marks none, East Asian wide and emoji two.
const codePointWidth = (cp: number): number =>
  (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || cp === 0xfe0f
    ? 0
    : (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
        (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)
    ? 2
    : 1

/** Columns the text takes on screen (escape sequences take none). */
export const visibleWidth = (text: string): number => {
  let width = 0
  for (const char of stripAnsi(text)) width += codePointWidth(char.codePointAt(0)!)
  return width
}

/**
 * Text fit for one cell: peer-supplied results and errors may carry newlines,
 * tabs or escape sequences that would move the cursor and break the redraw.
 */
export const sanitize = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").replace(/\s+/g, " ").trim()

/** The text cut to at most `width` columns, ending in `…` when something was cut. */
export const cut = (text: string, width: number): string => {
  if (width <= 0) return ""
  if (visibleWidth(text) <= width) return text
  let out = ""
  let used = 0
  for (const char of text) {
    const w = codePointWidth(char.codePointAt(0)!)
    if (used + w > width - 1) break
    out += char
    used += w
  }
  return `${out}…`
}

/**
 * The peer cell: the name, then `·` and the version spoken. When it is too wide the
 * name is cut and the version kept, since the version is what the cell is read for.
 */
export const peerCell = (peer: string, version: string | undefined, width: number): string => {
  const name = sanitize(peer)
  const suffix = version === undefined || version === "" ? "" : `·${sanitize(version)}`
  const full = `${name}${suffix}`
  if (visibleWidth(full) <= width) return full
  return suffix !== "" && width >= visibleWidth(suffix) + 2
    ? `${cut(name, width - visibleWidth(suffix))}${suffix}`
    : cut(full, width)
}

const pad = (text: string, width: number): string => text + " ".repeat(Math.max(0, width - visibleWidth(text)))

/**
 * Word-wraps plain text into lines of at most `width` columns; a word longer
 * than the width is split. With `maxLines`, the last kept line ends in `…`.
 */
export const wrap = (text: string, width: number, maxLines = Infinity): Array<string> => {
  if (width <= 0) return [""]
  const lines: Array<string> = []
  let line = ""
  const push = () => {
    lines.push(line)
    line = ""
  }
  for (const word of text.split(" ").filter((w) => w.length > 0)) {
    let rest = word
    const room = line === "" ? width : width - visibleWidth(line) - 1
    if (visibleWidth(rest) <= room) {
      line = line === "" ? rest : `${line} ${rest}`
      continue
    }
    if (line !== "") push()
    while (visibleWidth(rest) > width) {
      let head = ""
      let used = 0
      let taken = 0
      for (const char of rest) {
        const w = codePointWidth(char.codePointAt(0)!)
        if (used + w > width) break
        head += char
        used += w
        taken += char.length
      }
      lines.push(head)
      rest = rest.slice(taken)
    }
    line = rest
  }
  if (line !== "" || lines.length === 0) push()
  if (lines.length <= maxLines) return lines
  const kept = lines.slice(0, maxLines)
  const last = kept[maxLines - 1]!
  kept[maxLines - 1] = visibleWidth(last) < width ? `${last}…` : cut(last, width)
  return kept
}

/**
 * Wraps a paragraph with a hanging indent, e.g. for the demo's introduction and summary. A line that
 * starts with a label and two or more spaces (`  writer        A2A 1.0, streams…`) keeps them, and its
 * continuation lines line up under the text after the label.
 */
export const wrapIndented = (text: string, width: number, indent: number): Array<string> => {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ")
  // A line that fits keeps its own spacing (the summary lines up counts with two spaces).
  if (visibleWidth(clean) <= width) return [clean]
  const label = clean.match(/^ *\S+ {2,}(?=\S)/)?.[0]
  if (label !== undefined && visibleWidth(label) + 10 <= width) {
    const hang = " ".repeat(visibleWidth(label))
    return wrap(sanitize(clean.slice(label.length)), width - hang.length).map((line, i) => (i === 0 ? label : hang) + line)
  }
  const lead = text.match(/^ */)![0]
  const first = wrap(sanitize(text), Math.max(1, width - lead.length))
  const [head = "", ...tail] = first
  if (tail.length === 0) return [lead + head]
  // No hanging indent where it would leave continuation lines fewer than ten columns.
  const hang = " ".repeat(width >= lead.length + indent + 10 ? lead.length + indent : 0)
  return [lead + head, ...wrap(tail.join(" "), Math.max(1, width - hang.length)).map((line) => hang + line)]
}

/** Colour only on a terminal, and never when `NO_COLOR` has a value (https://no-color.org). */
export const colorEnabled = (isTty: boolean, noColor: string | undefined): boolean =>
  isTty && (noColor === undefined || noColor === "")

const stateColors: Record<string, number> = {
  pending: 90,
  in_progress: 36,
  queued: 33,
  completed: 32,
  failed: 31,
  cancelled: 90,
  denied: 35,
  invalid: 35
}

type Key = "n" | "task" | "peer" | "state" | "tries" | "elapsed"

interface Column {
  readonly key: Key
  readonly header: string
  readonly width: number
}

/** Continuation lines a row's detail may take, by how much the text matters when it is cut. */
const detailLines = (row: TableRow): number =>
  row.detailLines ?? (row.state === "failed" || row.state === "denied" || row.state === "invalid" ? 3 : row.state === "queued" ? 2 : 1)

const detailOf = (row: TableRow): string => {
  const text = sanitize(row.detail ?? "")
  return row.state === "queued" && row.queueDepth !== undefined
    ? `queue depth ${row.queueDepth}${text === "" ? "" : `: ${text}`}`
    : text
}

// Narrowest the detail column may get before columns are shrunk or dropped to make room.
const DETAIL_MIN = 28

/**
 * Picks the columns for the width: full headers and two-space gaps when there
 * is room; then single gaps and short headers; then no row number and a
 * narrower task column; then narrower task and peer columns; then no elapsed
 * time and no tries. The detail column gets whatever is left.
 */
const layout = (rows: ReadonlyArray<TableRow>, width: number) => {
  const longest = (values: ReadonlyArray<string>) => Math.max(0, ...values.map(visibleWidth))
  const task = longest(rows.map((r) => sanitize(r.task)))
  const peer = longest(rows.map((r) => peerCell(r.peer, r.version, Infinity)))
  const n = String(rows.length).length
  const steps: ReadonlyArray<{ gap: number; short: boolean; task: number; peer: number; drop: ReadonlyArray<Key> }> = [
    { gap: 2, short: false, task: 24, peer: 10, drop: [] },
    { gap: 1, short: true, task: 24, peer: 10, drop: [] },
    // Peer 10 keeps a name and its version (`legacy·0.3`) whole at 80 columns: 52 for the rest, DETAIL_MIN left.
    { gap: 1, short: true, task: 18, peer: 10, drop: ["n"] },
    { gap: 1, short: true, task: 14, peer: 7, drop: ["n"] },
    { gap: 1, short: true, task: 12, peer: 7, drop: ["n", "elapsed"] },
    { gap: 1, short: true, task: 10, peer: 6, drop: ["n", "elapsed", "tries"] }
  ]
  let chosen: { columns: ReadonlyArray<Column>; gap: number; detail: number } | undefined
  for (const step of steps) {
    const all: ReadonlyArray<Column> = [
      { key: "n", header: "#", width: Math.max(1, n) },
      { key: "task", header: "task", width: Math.max(4, Math.min(step.task, task)) },
      { key: "peer", header: "peer", width: Math.max(4, Math.min(step.peer, peer)) },
      { key: "state", header: "state", width: 11 },
      { key: "tries", header: step.short ? "try" : "tries", width: step.short ? 3 : 5 },
      { key: "elapsed", header: step.short ? "time" : "elapsed", width: step.short ? 5 : 7 }
    ]
    const columns = all.filter((c) => !step.drop.includes(c.key))
    const used = columns.reduce((sum, c) => sum + c.width + step.gap, 0)
    chosen = { columns, gap: step.gap, detail: width - used }
    if (chosen.detail >= DETAIL_MIN) break
  }
  return chosen!
}

/**
 * The table as lines, none wider than `options.width` columns. Failed, denied
 * and invalid rows wrap their error onto up to three lines (the HTTP status and
 * the reason stay visible at 80 columns); queued rows lead with the queue depth.
 */
export const renderTable = (rows: ReadonlyArray<TableRow>, options: TableOptions): Array<string> => {
  const width = Math.max(1, Math.floor(options.width))
  const { columns, detail, gap } = layout(rows, width)
  const space = " ".repeat(gap)
  const paint = (state: string, text: string) => {
    const code = stateColors[state]
    return options.color && code !== undefined ? `\x1b[${code}m${text}\x1b[0m` : text
  }
  const peerWidth = columns.find((c) => c.key === "peer")?.width ?? 0
  const cellsOf = (row: TableRow, index: number): Record<Key, string> => ({
    n: String(index + 1),
    task: sanitize(row.task),
    peer: peerCell(row.peer, row.version, peerWidth),
    state: row.state,
    tries: row.tries === undefined ? "" : String(row.tries),
    elapsed: row.elapsed ?? ""
  })
  // Every line goes through the same cut, so none can be wider than the terminal.
  const fit = (line: string) => (visibleWidth(line) <= width ? line : cut(stripAnsi(line), width))
  const line = (cells: Partial<Record<Key, string>>, detailText: string, state?: string) => {
    const parts = columns.map((c) => {
      const text = pad(cut(cells[c.key] ?? "", c.width), c.width)
      return c.key === "state" && state !== undefined ? paint(state, text) : text
    })
    const body = parts.join(space)
    return fit(detail > 0 ? `${body}${space}${detailText}`.trimEnd() : body.trimEnd())
  }
  const header = [
    line(Object.fromEntries(columns.map((c) => [c.key, c.header])), cut("result / error", detail)),
    line(Object.fromEntries(columns.map((c) => [c.key, "-".repeat(c.width)])), "-".repeat(Math.max(0, detail)))
  ]
  const budget = options.height === undefined ? Infinity : Math.max(1, Math.floor(options.height)) - header.length
  const blocks = (limit: (row: TableRow) => number) =>
    rows.map((row, index) => {
      const texts = detail > 0 ? wrap(detailOf(row), detail, limit(row)) : [""]
      return [
        line(cellsOf(row, index), texts[0] ?? "", row.state),
        ...texts.slice(1).map((text) => line({}, text))
      ]
    })
  // Fewer continuation lines when the screen is short: a frame taller than the screen cannot be redrawn in place.
  let body = blocks(detailLines)
  if (body.flat().length > budget) body = blocks((row) => Math.min(2, detailLines(row)))
  if (body.flat().length > budget) body = blocks(() => 1)
  if (body.flat().length <= budget) return [...header, ...body.flat()]
  // Still too tall: whole rows while they fit, then one line saying how many are hidden.
  const shown: Array<string> = []
  let count = 0
  for (const block of body) {
    if (shown.length + block.length > budget - 1) break
    shown.push(...block)
    count++
  }
  return [...header, ...shown, fit(`… ${rows.length - count} more rows (a taller terminal shows them)`)].slice(
    0,
    header.length + Math.max(1, budget)
  )
}

/**
 * Screen rows that lines printed earlier take now at `columns` (after a resize a
 * terminal that reflows turns one long line into several).
 */
export const screenRows = (lines: ReadonlyArray<string>, columns: number): number =>
  lines.reduce((sum, line) => sum + Math.max(1, Math.ceil(visibleWidth(line) / Math.max(1, columns))), 0)

/**
 * What to write to replace a frame that took `rowsBack` screen rows with `lines`:
 * back to its first row, each line erased before it is written, then the rows
 * below cleared (a shorter frame leaves none of the old one behind). The clear
 * to the end of the screen is sent from below the frame, never from the top
 * left corner: tmux treats a clear from there as a clear screen and pushes the
 * old frame into the scrollback.
 */
export const redraw = (rowsBack: number, lines: ReadonlyArray<string>): string =>
  `${rowsBack > 0 ? `\r\x1b[${rowsBack}A` : ""}${lines.map((line) => `\x1b[2K${line}\n`).join("")}\x1b[J`
