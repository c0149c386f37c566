# Shell helpers shared by the hack/ scripts. Source it; it defines functions only.

# need_root re-runs the calling script as root: through sudo when the caller
# is not root and sudo exists, else it stops with a message. A fresh Debian
# root shell has no sudo, so nothing here assumes it.
need_root() {
  [ "$(id -u)" -eq 0 ] && return
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -E "$0" "$@"
  fi
  echo "$(basename "$0"): run as root (no sudo on this machine)" >&2
  exit 1
}

# wait_ready SECONDS WHAT PID LOG CMD...: polls CMD every 0.1 s until it
# succeeds. If the process PID (the component being waited for) exits, or
# SECONDS pass, it prints LOG (that component's own output) and fails, so a
# wait never ends silently with the script going on without its component.
wait_ready() {
  local secs=$1 what=$2 pid=$3 log=$4
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited before it was ready; its output:" >&2
      cat "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$what was not ready after ${secs}s; its output so far:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# lines_at_least N FILE: FILE has at least N lines.
lines_at_least() { [ -s "$2" ] && [ "$(wc -l <"$2")" -ge "$1" ]; }
