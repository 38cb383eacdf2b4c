// The parallelize recipe's plan search as a picture: every measured point's throughput against its p95 batch
// latency, one colour per way of running the model, the chosen plan starred and the budget as a dashed line.
window.SlimforgePlanChart = (function () {
  const NICE_MS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  const label = (p) => `${p.variant}, ${p.threads} thread(s)${p.replicas > 1 ? ` × ${p.replicas} processes` : ""}, ` +
    `batch ${p.batch}${p.stopped_early ? " (probe only)" : ""}`;

  function draw(div, search) {
    if (!search || !search.points || !search.points.length) return;
    const variants = [...new Set(search.points.map((p) => p.variant))];
    const traces = variants.map((variant) => {
      const points = search.points.filter((p) => p.variant === variant);
      return { type: "scatter", mode: "markers", name: variant, x: points.map((p) => p.p95_ms),
               y: points.map((p) => p.throughput_per_s), text: points.map(label),
               hovertemplate: "%{text}<br>p95 %{x} ms · %{y:,.0f} samples/s<extra></extra>", marker: { size: 9 } };
    });
    const chosen = search.plan;
    traces.push({ type: "scatter", mode: "markers", name: "chosen plan", x: [chosen.p95_ms],
                  y: [chosen.throughput_per_s], text: [label(chosen)],
                  hovertemplate: "chosen: %{text}<extra></extra>", marker: { size: 18, symbol: "star", color: "#d97706" } });
    const budget = search.p95_budget_ms;
    const shapes = budget ? [{ type: "line", xref: "x", yref: "paper", x0: budget, x1: budget, y0: 0, y1: 1,
                               line: { dash: "dash", color: "#6b7280" } }] : [];
    const annotations = budget ? [{ x: Math.log10(budget), xref: "x", y: 1, yref: "paper", yanchor: "bottom",
                                    text: `p95 budget ${budget} ms`, showarrow: false, font: { color: "#6b7280" } }] : [];
    const latencies = search.points.map((p) => p.p95_ms).concat(search.p95_budget_ms || []);
    const low = Math.min(...latencies) / 1.5, high = Math.max(...latencies) * 1.5;
    div.hidden = false;
    Plotly.newPlot(div, traces, {
      title: { text: `Plan search: ${search.points.length} points, ${search.speedup}× the batch-1 one-thread baseline` },
      // Log scale for latencies from tenths to tens of ms; labelled only at round values, so ticks never crowd
      xaxis: { title: { text: "p95 latency per batch (ms), log scale" }, type: "log",
               tickvals: NICE_MS.filter((v) => v >= low && v <= high) },
      yaxis: { title: { text: "throughput (samples/s)" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.25 }, margin: { t: 60, b: 90 }, shapes, annotations,
    }, { responsive: true, displaylogo: false });
  }

  return { draw };
})();
