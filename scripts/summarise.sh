#!/usr/bin/env bash
# Means per task and configuration of the lines scripts/benchmark.sh printed.
# usage: scripts/summarise.sh benchmark.log
awk '{
  key = ""; c = ""; t = ""; tr = ""; sa = ""
  for (i = 1; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] == "task" || kv[1] == "method" || kv[1] == "setting" || kv[1] == "rounds" || kv[1] == "space" || kv[1] == "estimator") key = key " " $i
    if (kv[1] == "c2st") c = kv[2]
    if (kv[1] == "total_s") t = kv[2]
    if (kv[1] == "train_s") tr = kv[2]
    if (kv[1] == "sample_s") sa = kv[2]
  }
  if (c != "") { n[key]++; s[key] += c; tt[key] += t; ttr[key] += tr; tsa[key] += sa; if (c > mx[key]) mx[key] = c }
} END {
  for (k in n) printf "%-45s runs=%2d c2st_mean=%.3f c2st_max=%.3f train_s=%.1f sample_s=%.2f total_s=%.1f\n", k, n[k], s[k]/n[k], mx[k], ttr[k]/n[k], tsa[k]/n[k], tt[k]/n[k]
}' "$1" | sort
