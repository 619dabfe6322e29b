# Issue 15's steps of `make bench`, sourced by scripts/bench (which defines the
# helpers used here: say, die, sql_value, field, mib_of, calc, pass, now, timed,
# and the variables LOAD, ADDR, BASE, SERVER_PID, TENANT, WORK, JSON, AUTH, ms):
#   overload_step  512 keep-alive clients against the admission gate, polite and rude;
#   memory_step    1,000 connections that stall in the middle of a 60 KB body;
#   soak_main      `make soak`: 10 minutes of mixed load, RSS and p99 per minute.
# Each step sets its report variables (OVERLOAD_*, MEMORY_*);
# overload_report NAME and memory_report print the report's lines.

# bench_program NAME MAX_REDEMPTIONS: a new program of the bench tenant; prints its id.
bench_program() {
  local answer
  answer=$(curl -fsS "${JSON[@]}" "${AUTH[@]}" "$BASE/v1/programs" -d "{\"objectId\":\"iq__$1\",
    \"maxRedemptions\":$2,\"ticketLength\":8,\"startTime\":$((ms - 3600000)),
    \"endTime\":$((ms + 86400000)),\"name\":\"$1\"}") || die "cannot create the $1 program"
  grep -o '"prg_[^"]*"' <<<"$answer" | first_line | tr -d '"'
}

# bench_issue PROGRAM COUNT FILE: COUNT codes of PROGRAM as CSV into FILE.
bench_issue() {
  curl -fsS "${JSON[@]}" "${AUTH[@]}" -o "$3" -d "{\"count\":$2}" \
    "$BASE/v1/programs/$1/tickets/batch" || die "cannot issue $2 tickets of $1"
}

# Resets the server's VmHWM to its current RSS (Linux clear_refs), so that a step
# can read its own peak; where that is not allowed, the peak stays the run's.
reset_peak_rss() { echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true; }

# ---------------------------------------------------------------- overload
# 512 keep-alive clients (16× the 32 the server is measured at) from 32 loopback
# addresses — 16 each, under the per-client bound (64) and the throttle's
# in-flight allowance (40), so the overall bound (TESSERA_MAX_IN_FLIGHT, 256) is
# what sheds. Closed loop, twice, each on a program of its own: polite clients
# wait out a 503's Retry-After; rude ones send again at once. Then the database is
# asked what was recorded: every acknowledged redemption must be there once,
# nothing a 503 refused may be, no ticket over its limit. A request whose exchange
# broke (no answer) may or may not have been recorded, so recorded − acknowledged
# must lie in [0, broken].
overload_step() {
  overload_run polite wait
  overload_run rude retry
}

# overload_run NAME ON_503: sets OVERLOAD_<NAME> (tessera-load's JSON) and
# OVERLOAD_<NAME>_{RSS_BEFORE,RSS_PEAK,RECORDED,ROWS,OVER_LIMIT}.
overload_run() {
  local name=$1 on_503=$2 clients=${BENCH_OVERLOAD_CLIENTS:-512} seconds=${BENCH_OVERLOAD_SECONDS:-10}
  local tickets=${BENCH_OVERLOAD_TICKETS:-30000} program result var=OVERLOAD_${1^^}
  program=$(bench_program "overload-$name" 5)
  bench_issue "$program" "$tickets" "$WORK/overload-$name.csv"
  settle
  say "overload ($name, on 503: $on_503): $clients keep-alive clients from 32 addresses, $seconds s"
  reset_peak_rss
  printf -v "${var}_RSS_BEFORE" %s "$(mib_of "$SERVER_PID" VmRSS)"
  cpu_begin
  timed "overload-$name" "$LOAD" --addr "$ADDR" --program "$program" --codes "$WORK/overload-$name.csv" \
    --connections "$clients" --sources 32 --duration "$seconds" --on-503 "$on_503" || {
    cat "$WORK/overload-$name.err" "$WORK/overload-$name.out" >&2
    die "tessera-load failed (overload, $name)"
  }
  result=$(cat "$WORK/overload-$name.out")
  cpu_end "overload-$name" "$(field "$result" seconds)" "$(field "$result" ok)"
  printf -v "${var}_RSS_PEAK" %s "$(mib_of "$SERVER_PID" VmHWM)"
  printf -v "$var" %s "$result"
  printf -v "${var}_RECORDED" %s "$(sql_value "SELECT coalesce(sum(redemptions), 0) FROM tickets
    WHERE tenant_id = '$TENANT' AND program_id = '$program'")"
  printf -v "${var}_ROWS" %s "$(sql_value "SELECT count(*) FROM redemptions
    WHERE tenant_id = '$TENANT' AND program_id = '$program'")"
  printf -v "${var}_OVER_LIMIT" %s "$(sql_value "SELECT count(*) FROM tickets t JOIN programs p
    ON p.tenant_id = t.tenant_id AND p.id = t.program_id
    WHERE t.tenant_id = '$TENANT' AND t.program_id = '$program'
      AND t.redemptions > LEAST(COALESCE(t.max_redemptions, p.max_redemptions), p.max_redemptions)")"
  local recorded=${var}_RECORDED rows=${var}_ROWS over=${var}_OVER_LIMIT
  say "overload ($name): $result; recorded ${!recorded} uses (${!rows} redemption rows), ${!over} tickets over their limit"
}

# overload_report NAME: the report's lines for one run.
overload_report() {
  local var=OVERLOAD_${1^^} what
  local result=${!var} before=${var}_RSS_BEFORE peak=${var}_RSS_PEAK recorded=${var}_RECORDED
  local rows=${var}_ROWS over=${var}_OVER_LIMIT
  local ok shed retry broken extra
  ok=$(field "$result" ok) shed=$(field "$result" shed)
  retry=$(field "$result" shed_retry_after) broken=$(field "$result" broken)
  extra=$((${!recorded} - ok))
  [[ $1 == polite ]] && what="wait out Retry-After" || what="send again at once after a 503"
  cat <<REPORT
  overload, $1  ${BENCH_OVERLOAD_CLIENTS:-512} keep-alive clients (32 addresses) that $what, $(field "$result" seconds) s closed loop: $(field "$result" requests) answers
                  admitted: $ok redeemed ($(calc "\"%.0f\", $(field "$result" rps)")/s), p50 $(ms_of "$result" ok_p50_ms) ms, p99 $(ms_of "$result" ok_p99_ms) ms, max $(ms_of "$result" ok_max_ms) ms
                  shed: $shed × 503 ($retry with Retry-After), p50 $(ms_of "$result" shed_p50_ms) ms, p99 $(ms_of "$result" shed_p99_ms) ms, max $(ms_of "$result" shed_max_ms) ms
                  other errors $(($(field "$result" errors) - broken)), broken exchanges $broken
                  database: ${!recorded} uses recorded (${!rows} redemption rows) for $ok acknowledged, ${!over} tickets over their limit
                  server RSS ${!before} MiB before, peak ${!peak} MiB
                  CPU: $(cat "$WORK/overload-$1.cpu")
                  nothing lost or double-counted: $(pass "$extra >= 0 && $extra <= $broken && ${!rows} == ${!recorded} && ${!over} == 0")
                  every 503 with Retry-After: $(pass "$retry == $shed")
                  targets admitted p99 < 1000 ms: $(pass "$(field "$result" ok_p99_ms) < 1000"), shed p99 < admitted p50: $(pass "$(field "$result" shed_p99_ms) < $(field "$result" ok_p50_ms)"), peak < 256 MiB: $(pass "${!peak} < 256")
REPORT
}

# ---------------------------------------------------------------- memory give-back
# 1,000 connections from 64 loopback addresses each send the headers of a
# redemption announcing 64,096 bytes and 60,000 of them, then stall for
# BENCH_STALL_SECONDS (20; the server's body-read timeout is 10 s). The server's
# RSS is read before, every half second while they stall (the maximum is
# "during"), one second after they closed, and BENCH_GIVE_BACK_SECONDS (15) later.
memory_step() {
  local stall_seconds=${BENCH_STALL_SECONDS:-20} settle_seconds=${BENCH_GIVE_BACK_SECONDS:-15}
  local pid rss
  say "memory: 1000 connections stalling in the middle of a 60 KB body, ${stall_seconds} s"
  sleep 2
  MEMORY_BEFORE=$(mib_of "$SERVER_PID" VmRSS)
  MEMORY_DURING=$MEMORY_BEFORE
  "$LOAD" --addr "$ADDR" --program prg_none --codes /dev/null --connections 1000 --sources 64 \
    --stall 60000 --duration "$stall_seconds" >"$WORK/stall.out" 2>"$WORK/stall.err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(mib_of "$SERVER_PID" VmRSS)
    ((rss > MEMORY_DURING)) && MEMORY_DURING=$rss
    sleep 0.5
  done
  wait "$pid" || {
    cat "$WORK/stall.err" >&2
    die "tessera-load --stall failed"
  }
  MEMORY_STALL=$(cat "$WORK/stall.out")
  sleep 1
  MEMORY_CLOSED=$(mib_of "$SERVER_PID" VmRSS)
  sleep "$settle_seconds"
  MEMORY_AFTER=$(mib_of "$SERVER_PID" VmRSS)
  MEMORY_SETTLE=$settle_seconds
  say "memory: $MEMORY_STALL; RSS $MEMORY_BEFORE → $MEMORY_DURING → $MEMORY_CLOSED → $MEMORY_AFTER MiB"
}

memory_report() {
  local grown=$((MEMORY_DURING - MEMORY_BEFORE)) kept=$((MEMORY_AFTER - MEMORY_BEFORE))
  cat <<REPORT
  memory          1000 connections stalled after 60 KB of a body: $(field "$MEMORY_STALL" opened) opened, $(field "$MEMORY_STALL" answered_503) answered 503 at once, $(field "$MEMORY_STALL" answered_408) answered 408 (body timeout), $(field "$MEMORY_STALL" closed_by_server) closed by the server
                  server RSS: before $MEMORY_BEFORE MiB, during $MEMORY_DURING MiB, 1 s after they closed $MEMORY_CLOSED MiB, $MEMORY_SETTLE s later $MEMORY_AFTER MiB
                  target: given back (at most a quarter of the growth kept, or < 8 MiB): $(pass "$kept * 4 <= $grown || $kept < 8")
REPORT
}

# ---------------------------------------------------------------- soak
# soak_allocator: "ALLOCATED/RESIDENT" in MiB from the server's /metrics
# (tessera_allocator_*_bytes, jemalloc's statistics), "n/a" without them.
soak_allocator() {
  curl -fsS "$BASE/metrics" 2>/dev/null | awk '
    $1 == "tessera_allocator_allocated_bytes" { a = $2 }
    $1 == "tessera_allocator_resident_bytes" { r = $2 }
    END { if (a == "" || r == "") print "n/a"; else printf "%.1f/%.1f\n", a / 1048576, r / 1048576 }'
}

# `make soak` (scripts/bench --soak): BENCH_SOAK_MINUTES (10) one-minute runs of
# tessera-load, open loop at BENCH_SOAK_RATE (200) requests/s over 32 connections
# from 16 addresses (each minute ends on time: requests a connection could not send
# by then are counted as unsent), mixed: 70 % redemptions of issued codes, 15 % redemptions of
# unknown codes (404), 10 % single issuance, 5 % holds of one second (which expire
# by themselves). After each minute the server's RSS; after minutes 2 and the last
# also jemalloc's account from /metrics (live allocations and what it holds
# resident): RSS growing with "allocated" is a leak, above it retention. Only those
# two scrapes: a scrape also folds the metrics' histogram samples, and issue 15's
# growth was such samples, kept until a scrape — one every minute would have hidden
# it (crates/tessera-http/tests/metrics_memory.rs now guards it with none). It fails
# (exit 1) if RSS grows by more than 10 % from minute 2 to the end, or if latency
# rises: the median p99 of the last three minutes above 1.5 × the median p99 of
# minutes 2 to 4.
soak_main() {
  local minutes=${BENCH_SOAK_MINUTES:-10} rate=${BENCH_SOAK_RATE:-200} tickets=${BENCH_SOAK_TICKETS:-50000}
  local program minute result rss allocator alloc2="" alloc_end="" table="" rss2="" p99s=()
  ((minutes >= 5)) || die "BENCH_SOAK_MINUTES must be at least 5"
  program=$(bench_program soak 1000)
  bench_issue "$program" "$tickets" "$WORK/soak.csv"
  # Statistics for the fresh tickets, as before every measured run: without them
  # the redemption function's cached generic plan can scan the program's tickets
  # (a first soak ran at 43 requests/s, p50 24 s, until an ANALYZE: 18 ms).
  settle
  say "soak: $minutes minutes at $rate requests/s (redeem 70, fail 15, issue 10, hold 5)"
  for minute in $(seq 1 "$minutes"); do
    timed "soak-$minute" "$LOAD" --addr "$ADDR" --program "$program" --codes "$WORK/soak.csv" \
      --key "$KEY" --mix redeem=70,fail=15,issue=10,hold=5 --connections 32 --sources 16 \
      --rate "$rate" --duration 60 || {
      cat "$WORK/soak-$minute.err" >&2
      die "tessera-load failed in minute $minute"
    }
    result=$(cat "$WORK/soak-$minute.out")
    # KiB: a growth of 10 % of a 25 MiB process is below MiB rounding's grain.
    rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status")
    ((minute == 2)) && rss2=$rss
    allocator=""
    if ((minute == 2 || minute == minutes)); then
      allocator=$(soak_allocator)
      if ((minute == 2)); then alloc2=$allocator; else alloc_end=$allocator; fi
    fi
    p99s+=("$(field "$result" p99_ms)")
    table+=$(printf '\n  %6d %9d %8d %7d %5d %7d %8.2f %8.2f %8.2f %8.1f %s' "$minute" \
      "$(field "$result" requests)" "$(field "$result" ok)" "$(field "$result" errors)" \
      "$(field "$result" shed)" "$(field "$result" unsent)" "$(field "$result" p50_ms)" "$(field "$result" p99_ms)" \
      "$(field "$result" max_ms)" "$(calc "\"%.1f\", $rss / 1024")" "$allocator")
    say "soak minute $minute: $result; RSS $rss KiB${allocator:+; jemalloc allocated/resident $allocator MiB}"
  done
  local verdict
  verdict=$(printf '%s\n' "${p99s[@]}" | awk -v rss2="$rss2" -v rss="$rss" -v n="$minutes" '
    function median3(a, b, c) { return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b)) }
    { p[NR] = $1 }
    END {
      early = median3(p[2], p[3], p[4]); late = median3(p[n - 2], p[n - 1], p[n])
      growth = 100 * (rss - rss2) / rss2
      ok = growth <= 10 && late <= 1.5 * early
      printf "RSS minute 2 → %d: %.1f → %.1f MiB (%+.1f%%, limit +10%%); p99 median of minutes 2-4 %.2f ms, of the last three %.2f ms (limit 1.5×): %s",
        n, rss2 / 1024, rss / 1024, growth, early, late, ok ? "PASS" : "FAIL"
    }')
  cat <<REPORT

Tessera soak ($(date -u +%Y-%m-%dT%H:%M:%SZ)): $minutes minutes, $rate requests/s offered over 32 connections
  (open loop, latency from the scheduled send time; 70 % redeem, 15 % unknown code, 10 % issue, 5 % hold)
  minute  requests       ok  errors  shed  unsent  p50 ms   p99 ms   max ms  RSS MiB  jemalloc allocated/resident MiB$table

soak: jemalloc allocated/resident MiB, minute 2 → $minutes: ${alloc2:-n/a} → ${alloc_end:-n/a}
soak: $verdict
REPORT
  [[ $verdict == *PASS ]]
}
