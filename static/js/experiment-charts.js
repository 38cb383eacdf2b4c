// The experiment page's Plotly charts, built from series names: job and host resources, one chart per GPU,
// the recipe's metrics and the sensitivity bars. Every trace carries its series name in `meta`; time-based
// charts get a dashed line per stage. experiment.js feeds them: first the server's draw, then live points.
window.SlimforgeCharts = (function () {
  const CONFIG = { responsive: true, displaylogo: false };
  const UNITS = { percent: "%", mb: "MB", w: "W", c: "°C", mhz: "MHz", j: "J", s: "s" };
  const WORDS = { cpu: "CPU", rss: "RSS", sm: "SM", util: "utilization" };
  const HIDDEN_AT_FIRST = new Set(["host/memory_used_mb"]);  // gigabytes would flatten the job's RSS line
  const GPU = /^gpu(\d+)\//;
  const KIND = SlimforgeEvents.kinds;  // the progress series is named after its event kind

  function unitOf(name) {
    if (name === KIND.PROGRESS) return "percent";
    const suffix = name.slice(name.lastIndexOf("_") + 1);
    return name.includes("_") && suffix in UNITS ? suffix : "value";
  }

  function label(name) {
    if (name === KIND.PROGRESS) return "progress %";
    const [group, measure] = name.includes("/") ? [name.slice(0, name.indexOf("/")), name.slice(name.indexOf("/") + 1)] : ["", name];
    const unit = unitOf(name);
    const words = measure.split("_").slice(0, unit === "value" ? undefined : -1).map((w) => WORDS[w] || w).join(" ");
    return `${group === "host" ? "host " : ""}${words}${unit === "value" ? "" : ` ${UNITS[unit]}`}`;
  }

  const thousands = (n) => n.toLocaleString("en-US");

  class LiveChart {
    // axisOf(name) gives the y axis id ("y", "y2", ...); a chart without it stacks one row per unit.
    constructor(div, note, layout, { axisOf = null, timeBased = false, labelOf = label } = {}) {
      Object.assign(this, { div, note, axisOf, timeBased, labelOf });
      this.traces = {};   // series name -> trace index
      this.totals = {};   // series name -> points in the full series, drawn or not
      this.units = [];    // stacked rows, top first
      this.stages = [];
      Plotly.newPlot(div, [], layout, CONFIG);
    }

    // points: {name: {x, y, count?}}; count is the full series' length when the server downsampled it.
    extend(points) {
      const fresh = [], update = { x: [], y: [] }, indices = [];
      for (const [name, p] of Object.entries(points)) {
        this.totals[name] = (this.totals[name] || 0) + (p.count ?? p.x.length);
        if (name in this.traces) {
          update.x.push(p.x); update.y.push(p.y); indices.push(this.traces[name]);
        } else {
          this.traces[name] = Object.keys(this.traces).length;
          fresh.push(this.trace(name, p));
        }
      }
      if (fresh.length) Plotly.addTraces(this.div, fresh);
      if (indices.length) Plotly.extendTraces(this.div, update, indices);
      this.updateNote();
    }

    trace(name, p) {
      const trace = { name: this.labelOf(name), meta: name, x: p.x, y: p.y, mode: "lines", yaxis: this.yaxis(name) };
      if (HIDDEN_AT_FIRST.has(name)) trace.visible = "legendonly";
      if (name === KIND.PROGRESS) trace.line = { dash: "dot" };
      return trace;
    }

    yaxis(name) {
      if (this.axisOf) return this.axisOf(name);
      const unit = unitOf(name);
      if (!this.units.includes(unit)) this.addRow(unit);
      const row = this.units.indexOf(unit) + 1;
      return row === 1 ? "y" : `y${row}`;
    }

    addRow(unit) {
      this.units.push(unit);
      const n = this.units.length, update = {};
      this.units.forEach((u, i) => {
        update[i === 0 ? "yaxis" : `yaxis${i + 1}`] = {
          domain: [1 - (i + 1) / n + 0.06, 1 - i / n], anchor: "x", rangemode: "tozero",
          title: { text: u === "value" ? "" : UNITS[u] },
        };
      });
      this.div.style.height = `${120 + 110 * n}px`;
      Plotly.relayout(this.div, update);
      Plotly.Plots.resize(this.div);  // a taller box: Plotly does not notice by itself
    }

    addStage(stage) {
      if (!this.timeBased) return;
      this.stages.push(stage);
      Plotly.relayout(this.div, {
        shapes: this.stages.map((s) => ({ type: "line", xref: "x", yref: "paper", x0: s.t, x1: s.t, y0: 0, y1: 1,
                                          line: { dash: "dash", width: 1, color: "#6b7280" } })),
        // Three rows of labels, so stages a moment apart do not write over each other.
        annotations: this.stages.map((s, i) => ({ x: s.t, xref: "x", y: 1, yref: "paper", yshift: 12 * (i % 3),
                                                  text: s.name, showarrow: false, xanchor: "left", yanchor: "bottom",
                                                  font: { size: 10, color: "#6b7280" } })),
      });
    }

    pointCount() { return this.div.data.reduce((sum, t) => sum + t.x.length, 0); }

    updateNote() {
      const shown = Object.fromEntries(this.div.data.map((t) => [t.meta, t.x.length]));
      const cut = Object.keys(this.totals).filter((name) => shown[name] < this.totals[name]);
      if (!this.note || !cut.length) return;
      const sum = (counts) => thousands(cut.reduce((total, n) => total + counts[n], 0));
      const which = cut.length === 1 ? this.labelOf(cut[0]) : `${cut.length} series`;
      this.note.firstChild.textContent = `Showing ${sum(shown)} of ${sum(this.totals)} points (${which}); `;
      this.note.hidden = false;
    }
  }

  function timeLayout(extra) {
    return { margin: { t: 48, r: 60, b: 96, l: 60 }, legend: { orientation: "h", yref: "container", y: 0, yanchor: "bottom" },
             xaxis: { title: { text: "seconds" }, anchor: "free", position: 0 }, ...extra };
  }

  function noteFor(div, csvUrl) {
    const note = document.createElement("p");
    note.className = "hint chart-note";
    note.hidden = true;
    const link = document.createElement("a");
    link.href = csvUrl; link.textContent = "download the CSV for all";
    note.append(document.createTextNode(""), link);
    div.after(note);
    return note;
  }

  // All the page's charts; `put(series)` sends each series to its chart, making GPU charts as GPUs appear.
  function create({ resources, gpuBox, metrics, sensitivity, csvUrl }) {
    const charts = {
      resources: new LiveChart(resources, noteFor(resources, csvUrl), timeLayout({
        yaxis: { title: { text: "% (CPU, memory, progress)" }, rangemode: "tozero" },
        yaxis2: { title: { text: "MB" }, overlaying: "y", side: "right", rangemode: "tozero" },
      }), { timeBased: true, axisOf: (name) => (unitOf(name) === "percent" ? "y" : "y2") }),
      metrics: new LiveChart(metrics, noteFor(metrics, csvUrl), {
        margin: { t: 20, r: 60, b: 40, l: 50 }, legend: { orientation: "h" }, xaxis: { title: { text: "step" } },
        yaxis: { title: { text: "loss" }, rangemode: "tozero" },
        yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1] },
      }, { axisOf: (name) => (name.includes("accuracy") ? "y2" : "y"), labelOf: (name) => name }),
      gpus: {},
    };
    const bars = { x: [], y: [] };
    const stages = [];

    function gpuChart(index) {
      if (!(index in charts.gpus)) {
        const heading = document.createElement("h3");
        heading.textContent = `GPU ${index}`;
        const div = document.createElement("div");
        div.className = "chart gpu-chart"; div.id = `gpu${index}-chart`;
        gpuBox.append(heading, div);
        const chart = new LiveChart(div, noteFor(div, csvUrl), timeLayout({ showlegend: true }), { timeBased: true });
        stages.forEach((s) => chart.addStage(s));
        charts.gpus[index] = chart;
      }
      return charts.gpus[index];
    }

    function chartOf(name, kind) {
      if (kind === KIND.METRIC) return charts.metrics;
      const gpu = GPU.exec(name);
      return gpu ? gpuChart(Number(gpu[1])) : charts.resources;
    }

    function put(series) {
      const byChart = new Map();
      for (const [name, s] of Object.entries(series)) {
        if (s.kind === "bar") { bars.x.push(...s.x); bars.y.push(...s.y); continue; }
        const chart = chartOf(name, s.kind);
        if (!byChart.has(chart)) byChart.set(chart, {});
        byChart.get(chart)[name] = s;
      }
      for (const [chart, points] of byChart) {
        if (chart.div.hidden) { chart.div.hidden = false; Plotly.Plots.resize(chart.div); }  // hidden, it had no size
        chart.extend(points);
      }
      if (series.sensitivity) drawBars();
      resources.dataset.points = String(charts.resources.pointCount());
    }

    function drawBars() {
      sensitivity.hidden = false;
      Plotly.react(sensitivity, [{ type: "bar", meta: "sensitivity", x: bars.x, y: bars.y, marker: { color: "#7c3aed" } }],
        { margin: { t: 20, r: 20, b: 120, l: 60 }, yaxis: { title: { text: "output error when only this layer is quantized" } } },
        CONFIG);
    }

    function addStage(stage) {
      stages.push(stage);
      [charts.resources, ...Object.values(charts.gpus)].forEach((chart) => chart.addStage(stage));
    }

    return { put, addStage };
  }

  return { create, label };
})();
