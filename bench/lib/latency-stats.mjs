// Latency summaries as the benchmarks print them: chosen percentiles (nearest rank), the minimum,
// optionally the maximum, and the sample count, in milliseconds rounded to `digits` decimals.
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

export function latencyStats(xs, { percentiles = [50, 99], digits = 1, max = false } = {}) {
  const scale = 10 ** digits;
  const round = (x) => Math.round(x * scale) / scale;
  const out = {};
  for (const p of percentiles) out[`p${p}_ms`] = round(percentile(xs, p));
  out.min_ms = round(Math.min(...xs));
  if (max) out.max_ms = round(Math.max(...xs));
  out.n = xs.length;
  return out;
}
