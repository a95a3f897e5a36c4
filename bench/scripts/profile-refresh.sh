#!/usr/bin/env bash
# Runs the refresh scenario and samples, over 6 s in its middle, the CPU time of authd, of
# every postgres process, of Redis and of the generator, and authd's context switches.
# Prints them per refresh. Usage: bench/scripts/profile-refresh.sh [BINARY] [extra bench args]
# (BINARY defaults to target/release/authd; PostgreSQL + Redis unless --memory is passed).
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-target/release/authd}
shift || true
duration=12
out=$(mktemp)
err=$(mktemp)
target/release/authd-bench --cost 10 --scenarios refresh --duration "$duration" \
    --authd "$binary" "$@" >"$out" 2>"$err" &
bench=$!
hz=$(getconf CLK_TCK)
# utime+stime of the processes whose comm matches $1, in ticks.
# The authd under test is the bench's child, whatever its binary is called.
pids() { if [ "$1" = authd ]; then pgrep -P "$bench" || true; else pgrep -x "$1" || true; fi; }
ticks() { local t=0; for p in $(pids "$1"); do
    t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
# utime+stime of authd's signing threads (named rsa-N), in ticks.
rsa_ticks() { local t=0; for p in $(pids authd); do
    for f in /proc/$p/task/*; do
        if grep -q '^rsa-' "$f/comm" 2>/dev/null; then
            t=$((t + $(awk '{print $14+$15}' "$f/stat" 2>/dev/null || echo 0))); fi
    done; done; echo $t; }
switches() { local s=0; for p in $(pids authd); do
    for f in /proc/$p/task/*/status; do
        s=$((s + $(awk '/ctxt_switches/{n+=$2} END{print n+0}' "$f" 2>/dev/null || echo 0)))
    done; done; echo $s; }
# Wait for the scenario: the ceilings take a few seconds, then users are seeded; the bench
# prints "[refresh]" progress once a second while the scenario runs.
sleep_until_refresh() { for _ in $(seq 1 900); do
    if grep -q '\[refresh\]' "$err" 2>/dev/null; then return; fi
    sleep 0.1; done; }
sleep_until_refresh
sleep 2
read -r _ su0 sn0 ss0 si0 sw0 sq0 ssq0 st0 _ < /proc/stat
k0=$(rsa_ticks); a0=$(ticks authd); p0=$(ticks postgres); r0=$(ticks redis-server); g0=$(ticks authd-bench); s0=$(switches)
t0=$(date +%s.%N)
sleep 6
read -r _ su1 sn1 ss1 si1 sw1 sq1 ssq1 st1 _ < /proc/stat
k1=$(rsa_ticks); a1=$(ticks authd); p1=$(ticks postgres); r1=$(ticks redis-server); g1=$(ticks authd-bench); s1=$(switches)
t1=$(date +%s.%N)
wait $bench
grep -E "^(ceilings|refresh )" "$out"
rate=$(awk '/^refresh /{print $2}' "$out")
awk -v idle=$((si1-si0+sw1-sw0)) -v softirq=$((sq1-sq0+ssq1-ssq0)) -v steal=$((st1-st0)) -v k=$((k1-k0)) -v a=$((a1-a0)) -v p=$((p1-p0)) -v r=$((r1-r0)) -v g=$((g1-g0)) -v s=$((s1-s0)) \
    -v hz="$hz" -v rate="$rate" -v t0="$t0" -v t1="$t1" 'BEGIN{
    n = rate * (t1 - t0);
    cores = '"$(nproc)"'; secs = t1 - t0;
    printf "per refresh over %.1f s (%d refreshes at the scenario rate): authd %.0f us (signing threads %.0f, the rest %.0f), postgres %.0f us, redis %.0f us, generator %.0f us; authd context switches %.2f\n",
        secs, n, a/hz/n*1e6, k/hz/n*1e6, (a-k)/hz/n*1e6, p/hz/n*1e6, r/hz/n*1e6, g/hz/n*1e6, s/n;
    printf "share of the %d cores: signing %.2f, authd other %.2f, postgres %.2f, generator %.2f, the rest %.2f (of which idle %.2f, interrupts %.2f, stolen by the hypervisor %.2f); CPU per refresh outside signing %.0f us\n",
        cores, k/hz/secs/cores, (a-k)/hz/secs/cores, p/hz/secs/cores, g/hz/secs/cores, 1-(a+p+r+g)/hz/secs/cores,
        idle/hz/secs/cores, softirq/hz/secs/cores, steal/hz/secs/cores, (a-k+p+r+g)/hz/n*1e6 }'
rm -f "$out" "$err"
