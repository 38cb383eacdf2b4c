// The compare page's Pareto chart: any two axes, the front the server computed drawn in colour and joined,
// the dominated runs in grey, the original model as a reference, runs missing a figure named below the chart.
(function () {
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const chart = document.getElementById("pareto");
  const xSelect = document.getElementById("x-axis");
  const ySelect = document.getElementById("y-axis");
  const axes = Object.fromEntries(data.axes.map((axis) => [axis.key, axis]));
  const order = data.axes.map((axis) => axis.key);
  const COLORS = { front: "#2563eb", dominated: "#9ca3af", original: "#d97706" };

  const frontKey = (a, b) => [a, b].sort((p, q) => order.indexOf(p) - order.indexOf(q)).join("|");
  const has = (entry, key) => entry.values[key] !== null && entry.values[key] !== undefined;
  const escape = (text) => String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  function shown(key, value) {
    if (key === "accuracy") return `${(100 * value).toFixed(2)} %`;
    if (key === "size") return SlimforgeSizes.format(value);
    if (key === "latency") return `${value.toFixed(3)} ms`;
    return `${value.toFixed(3)} J`;
  }

  function hover(entry, x, y) {
    const downloads = entry.artifacts.map((a) => escape(a.name)).join(", ") || "none";
    const settings = Object.entries(entry.settings).map(([k, v]) => `${escape(k)}=${escape(v)}`).join(", ");
    return [`<b>#${entry.id}</b> ${escape(entry.recipe)} · ${escape(entry.variant)}`, `model ${escape(entry.model.name)}`,
      settings, `${axes[x].label}: ${shown(x, entry.values[x])}`, `${axes[y].label}: ${shown(y, entry.values[y])}`,
      `downloads: ${downloads} (links in the table)`, "click to open"].filter(Boolean).join("<br>");
  }

  function trace(name, entries, x, y, style) {
    return {
      name, x: entries.map((e) => e.values[x]), y: entries.map((e) => e.values[y]),
      customdata: entries.map((e) => e.url), text: entries.map((e) => `#${e.id}`),
      hovertext: entries.map((e) => hover(e, x, y)), hoverinfo: "text", textposition: "top center",
      type: "scatter", cliponaxis: false, ...style,
    };
  }

  // The original model is a meaningful reference only when every run started from the same model.
  function originalTrace(x, y) {
    const models = new Set(data.experiments.map((e) => e.model.id));
    const reference = data.references[0];
    if (data.references.length !== 1 || models.size !== 1 || !has(reference, x) || !has(reference, y)) return [];
    return [{
      name: `original ${escape(reference.model.name)}`, x: [reference.values[x]], y: [reference.values[y]],
      customdata: [null], mode: "markers", type: "scatter", hoverinfo: "text",
      hovertext: [`<b>original ${escape(reference.model.name)}</b> (measured in #${reference.measured_in})<br>` +
        `${axes[x].label}: ${shown(x, reference.values[x])}<br>${axes[y].label}: ${shown(y, reference.values[y])}`],
      marker: { symbol: "star", size: 16, color: COLORS.original, line: { width: 1, color: "#fff" } },
    }];
  }

  function leftOutNote(x, y, missing) {
    const box = document.getElementById("left-out");
    box.hidden = missing.length === 0;
    box.textContent = missing.length ? "Left out of this chart: " + missing.map((e) => {
      const reasons = [x, y].filter((key) => !has(e, key)).map((key) => `${axes[key].label}: ${e.missing[key]}`);
      return `#${e.id} (${[...new Set(reasons)].join("; ")})`;
    }).join(" · ") : "";
  }

  function axisTitle(key) {
    return { text: `${axes[key].label} — ${axes[key].better} is better`, standoff: 12 };
  }

  // The range is the data's, padded, never Plotly's guess: a single point or two equal ones would otherwise get
  // an arbitrary span (an accuracy axis once ran 0–2). Every figure here is non-negative; accuracy stops at 100 %.
  function axisRange(key, values) {
    if (!values.length) return undefined;
    const lo = Math.min(...values), hi = Math.max(...values);
    const pad = hi > lo ? (hi - lo) * 0.12 : Math.max(Math.abs(hi) * 0.05, 1e-9);
    const range = [lo >= 0 ? Math.max(lo - pad, 0) : lo - pad, hi + pad];
    if (key === "accuracy" && hi <= 1) range[1] = Math.min(range[1], 1);
    return range;
  }

  function axis(key, values) {
    const range = axisRange(key, values);
    return { title: axisTitle(key), zeroline: false, automargin: true, range, autorange: range ? false : true,
      tickformat: key === "accuracy" ? ".1%" : undefined };
  }

  function draw() {
    const x = xSelect.value, y = ySelect.value;
    const front = new Set(data.fronts[frontKey(x, y)] || []);
    const plotted = data.experiments.filter((e) => has(e, x) && has(e, y));
    const onFront = plotted.filter((e) => front.has(e.id)).sort((a, b) => a.values[x] - b.values[x] || a.values[y] - b.values[y]);
    const traces = [
      trace("Pareto front", onFront, x, y, { mode: "lines+markers+text", marker: { size: 12, color: COLORS.front },
        line: { color: COLORS.front, width: 2 } }),
      trace("dominated", plotted.filter((e) => !front.has(e.id)), x, y,
        { mode: "markers+text", marker: { size: 10, color: COLORS.dominated }, textfont: { color: COLORS.dominated } }),
      ...originalTrace(x, y),
    ];
    const drawn = traces.flatMap((t) => t.x.map((value, i) => [value, t.y[i]]));
    Plotly.react(chart, traces, {
      // The legend sits above the plot, clear of the axis titles, which automargin keeps clear of the ticks.
      margin: { t: 48, r: 24, b: 56, l: 72 }, legend: { orientation: "h", x: 0, y: 1.04, yanchor: "bottom" },
      hovermode: "closest",
      xaxis: axis(x, drawn.map((point) => point[0])), yaxis: axis(y, drawn.map((point) => point[1])),
    }, { responsive: true, displaylogo: false });
    chart.dataset.axes = `${x}|${y}`;
    leftOutNote(x, y, data.experiments.filter((e) => !plotted.includes(e)));
  }

  // The two axes are always different: choosing the other select's axis swaps them.
  let previous = {};
  function choose(changed, other) {
    if (changed.value === other.value) other.value = previous[changed.id];
    previous = { [xSelect.id]: xSelect.value, [ySelect.id]: ySelect.value };
    draw();
  }

  xSelect.value = "latency";
  ySelect.value = data.experiments.some((e) => has(e, "accuracy")) ? "accuracy" : "size";
  previous = { [xSelect.id]: xSelect.value, [ySelect.id]: ySelect.value };
  xSelect.addEventListener("change", () => choose(xSelect, ySelect));
  ySelect.addEventListener("change", () => choose(ySelect, xSelect));
  draw();
  chart.on("plotly_click", (event) => {
    const url = event.points.length ? event.points[0].customdata : null;
    if (url) window.location.assign(url);
  });
})();
