#!/usr/bin/env bash
# Runs `npm run -s demo` in real terminals (tmux panes of 80x24, 120x40 and 200x50)
# and prints each screen while a delegation is queued and the whole scrollback at the
# end, to check the live table by eye: one table, no stacked copies, no wrapped lines.
# Exits 1 when a run fails, the header shows more than once, or a line wrapped.
#
#   scripts/demo-tty.sh            # all three sizes
#   scripts/demo-tty.sh 100x30     # any sizes, as WIDTHxHEIGHT
#   NO_COLOR=1 scripts/demo-tty.sh # passed on to the demo
set -euo pipefail

cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { echo "tmux is needed (apt-get install -y tmux)" >&2; exit 1; }

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(80x24 120x40 200x50)

# A socket of its own, so this never touches the user's tmux server.
socket="demo-tty-$$"
tmux_() { tmux -L "$socket" "$@"; }
trap 'tmux_ kill-server 2>/dev/null || true' EXIT

status=0
for size in "${sizes[@]}"; do
  width=${size%x*}
  height=${size#*x}
  session="demo-${size}"
  done_file=$(mktemp)
  # The sleep keeps the pane open after the demo exits, so its last screen can be captured.
  tmux_ new-session -d -s "$session" -x "$width" -y "$height" \
    "env ${NO_COLOR:+NO_COLOR=$NO_COLOR} npm run -s demo; echo \$? > '$done_file'; sleep 600"
  # While it runs, keep the first screen that shows a queued delegation (its queue depth), if one appears.
  live=""
  for _ in $(seq 1 300); do
    [ -s "$done_file" ] && break
    if [ -z "$live" ]; then
      screen=$(tmux_ capture-pane -p -t "$session")
      grep -q 'queue depth' <<<"$screen" && live=$screen
    fi
    sleep 0.2
  done
  rc=$(cat "$done_file" 2>/dev/null || echo "timeout")
  rm -f "$done_file"
  if [ -n "$live" ]; then
    echo "=== ${width}x${height} while running: the screen when a delegation was queued"
    printf '%s\n' "$live" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
  fi
  echo "=== ${width}x${height} at the end (demo exit: ${rc}): the whole scrollback, the table's last frame at the bottom"
  capture=$(tmux_ capture-pane -p -S - -t "$session" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}')
  printf '%s\n' "$capture"
  # A clean run shows the table's header once; more means the redraw stacked copies.
  headers=$(grep -c '^#\{0,1\} *task ' <<<"$capture" || true)
  # -J joins lines the terminal wrapped: the same count both ways means no line was wider than the pane.
  wrapped=$(( $(tmux_ capture-pane -p -S - -t "$session" | wc -l) - $(tmux_ capture-pane -p -J -S - -t "$session" | wc -l) ))
  echo "--- table headers: ${headers}; wrapped lines: ${wrapped}"
  [ "$rc" = "0" ] && [ "$headers" = "1" ] && [ "$wrapped" = "0" ] || status=1
  tmux_ kill-session -t "$session"
done
exit $status
