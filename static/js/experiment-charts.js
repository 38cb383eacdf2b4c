// The experiment page's Plotly charts, built from series names: one chart per group, each with its own axis and
// units — job and host resources, one chart per GPU, losses, accuracies, pruning ratios, any other metric — and
// the sensitivity bars. Every data trace carries its series name in `meta`. Time charts share the stages: a strip
// above the plot (labels shown only where they fit, named in the hover) and shaded bands over it. Charts with the
// same x (seconds, or steps) zoom and hover together. Legends are HTML buttons under each chart, so they never
// cover an axis and work from the keyboard. experiment.js feeds them: first the server's draw, then live points.
window.SlimforgeCharts = (function () {
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  const UNITS = { percent: "%", mb: "MB", w: "W", c: "°C", mhz: "MHz", j: "J", s: "s", ms: "ms" };
  const WORDS = { cpu: "CPU", rss: "RSS", sm: "SM", util: "utilization" };
  const HIDDEN_AT_FIRST = new Set(["host/memory_used_mb"]);  // gigabytes would flatten the job's RSS line
  // A multi-host job's further hosts name their readings host<N>/...: their own resource chart and GPU charts.
  const HOST = /^host(\d+)\//;
  const GPU = /^(?:host(\d+)\/)?gpu(\d+)\//;
  const KIND = SlimforgeEvents.kinds;  // the progress series is named after its event kind
  const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4d7c0f",
                   "#4b5563", "#c2410c"];
  const PLOT_TOP = 0.84;           // time charts: the plot below, the stage strip above
  const STRIP_AXIS = "y9";         // the strip's own y axis, clear of the rows a GPU chart stacks
  const STRIP_FILL = ["#dbeafe", "#e5e7eb"];
  const BAND_FILL = ["rgba(37, 99, 235, 0.06)", "rgba(107, 114, 128, 0.06)"];
  const SMOOTHED = "~smoothed";    // suffix of the meta of a smoothed copy, drawn over its faint raw series
  const PER_STEP = /\/train_loss$/;  // per-step series, noisy enough to want smoothing
  const STAGE_REDRAW_MS = 1000;    // the open stage's end follows the data at most this often

  // Which chart a metric goes to, by its measure (the name after the prefix): one axis, one unit per chart.
  const METRIC_GROUPS = [
    { key: "loss", title: "Loss", test: (m) => m.includes("loss"), log: true,
      yaxis: { title: { text: "loss" } } },
    // A cosine is no share of samples, and its values sit near 1: ticks keep the digits that differ ("~" trims zeros).
    { key: "cosine", title: "Cosine similarity", test: (m) => /cosine/.test(m),
      yaxis: { title: { text: "mean cosine" }, tickformat: "~r" } },
    { key: "score", title: "Accuracy and agreement", test: (m) => /accuracy|agreement|fidelity/.test(m),
      yaxis: { title: { text: "share of samples" }, tickformat: "~%" } },
    { key: "ratio", title: "Pruning: sparsity and what is left of the original", test: (m) => /ratio|sparsity/.test(m),
      yaxis: { title: { text: "share" }, tickformat: "~%" } },
  ];

  function unitOf(name) {
    if (name === KIND.PROGRESS) return "percent";
    const suffix = name.slice(name.lastIndexOf("_") + 1);
    return name.includes("_") && suffix in UNITS ? suffix : "value";
  }

  function label(name) {
    if (name === KIND.PROGRESS) return "progress %";
    name = name.replace(HOST, "");  // the chart's title names the host
    const [group, measure] = name.includes("/") ? [name.slice(0, name.indexOf("/")), name.slice(name.indexOf("/") + 1)] : ["", name];
    const unit = unitOf(name);
    const words = measure.split("_").slice(0, unit === "value" ? undefined : -1).map((w) => WORDS[w] || w).join(" ");
    return `${group === "host" ? "host " : ""}${words}${unit === "value" ? "" : ` ${UNITS[unit]}`}`;
  }

  function metricGroup(name) {
    const measure = name.slice(name.indexOf("/") + 1);
    const group = METRIC_GROUPS.find((g) => g.test(measure));
    if (group) return group;
    return { key: `other:${name}`, title: name, yaxis: {} };  // the title names it, units and all
  }

  const thousands = (n) => n.toLocaleString("en-US");
  // Plotly reads tags in the text it draws (<b>, <a href>): names come from the job, so they are drawn plain.
  const plain = (text) => String(text).replace(/[<>]/g, "");

  // Exponential moving average, debiased like TensorBoard's, so the first points are not pulled towards zero.
  class Smoother {
    constructor(weight) { this.weight = weight; this.last = 0; this.n = 0; }
    push(ys) {
      const w = this.weight;
      return ys.map((y) => {
        this.last = w * this.last + (1 - w) * y;
        this.n += 1;
        return w === 0 ? y : this.last / (1 - w ** this.n);
      });
    }
  }

  // Charts that share an x (seconds or steps): a zoom or a hover on one is shown on all.
  class XGroup {
    constructor() { this.charts = []; this.busy = false; }

    join(chart) {
      this.charts.push(chart);
      chart.div.on("plotly_relayout", (event) => this.zoom(chart, event));
      chart.div.on("plotly_hover", (event) => this.hover(chart, event));
      chart.div.on("plotly_unhover", () => this.unhover(chart));
    }

    others(chart) { return this.charts.filter((c) => c !== chart && c.drawn && !c.box.hidden); }

    zoom(chart, event) {
      if (this.busy) return;
      let update = null;
      if ("xaxis.range[0]" in event) update = { "xaxis.range": [event["xaxis.range[0]"], event["xaxis.range[1]"]] };
      else if (event["xaxis.range"]) update = { "xaxis.range": event["xaxis.range"] };
      else if (event["xaxis.autorange"]) update = { "xaxis.autorange": true };
      if (!update) return;
      this.busy = true;
      Promise.all(this.others(chart).map((c) => Plotly.relayout(c.div, update))).finally(() => { this.busy = false; });
    }

    hover(chart, event) {
      if (this.busy || !event.xvals) return;
      this.busy = true;
      try {
        for (const c of this.others(chart)) Plotly.Fx.hover(c.div, { xval: event.xvals[0] }, c.subplots());
      } finally { this.busy = false; }
    }

    unhover(chart) {
      if (this.busy) return;
      this.busy = true;
      try { this.others(chart).forEach((c) => Plotly.Fx.unhover(c.div)); } finally { this.busy = false; }
    }
  }

  // A chart's figure: heading and controls, the plot, an HTML legend, and a note when lines were downsampled.
  function chartBox(parent, { id, title, csvUrl, plot = null }) {
    const box = document.createElement("figure");
    box.className = "chart-box";
    const caption = document.createElement("figcaption");
    const heading = document.createElement("h3");
    heading.textContent = title;
    const controls = document.createElement("span");
    controls.className = "chart-controls";
    caption.append(heading, controls);
    const div = plot || document.createElement("div");
    div.classList.add("chart");
    if (id) div.id = id;
    // A group, not an img: Plotly puts buttons (its mode bar) inside, and an img's content is hidden from readers.
    div.setAttribute("role", "group");
    div.setAttribute("aria-label", `${title} chart`);
    const legend = document.createElement("div");
    legend.className = "legend";
    legend.setAttribute("role", "group");
    legend.setAttribute("aria-label", `Series of the ${title.toLowerCase()} chart: press to hide or show`);
    const note = document.createElement("p");
    note.className = "hint chart-note";
    note.hidden = true;
    const link = document.createElement("a");
    link.href = csvUrl; link.textContent = "download the CSV for all";
    note.append(document.createTextNode(""), link);
    box.append(caption, div, legend, note);
    parent.append(box);
    return { box, div, controls, legend, note };
  }

  class LiveChart {
    // axisOf(name) gives the y axis id ("y", "y2", ...); a chart without it stacks one row per unit.
    constructor(parts, layout, { axisOf = null, timeBased = false, labelOf = label, xgroup, smoothing = null } = {}) {
      Object.assign(this, parts, { axisOf, timeBased, labelOf, smoothing });
      this.top = timeBased ? PLOT_TOP : 1;
      this.traces = {};     // series name -> trace index
      this.smoothed = {};   // series name -> index of its smoothed copy
      this.smoothers = {};  // series name -> its running average
      this.totals = {};     // series name -> points in the full series, drawn or not
      this.units = [];      // stacked rows, top first
      this.stages = [];
      this.xMax = null;     // the latest time drawn: where the open stage ends
      this.stageTimer = null;
      this.stripIndex = null;  // the stage strip's trace, added with the first stage and updated in place after
      const base = { showlegend: false, hovermode: "x unified", hoverlabel: { namelength: -1 } };
      if (timeBased) Object.assign(base, this.stripLayout());
      if (timeBased && layout.yaxis) layout = { ...layout, yaxis: { ...layout.yaxis, domain: [0, this.top] } };
      // Drawn once its first points come, with its rows and stages: one Plotly call for a whole first draw.
      this.layout = { ...base, ...layout };
      this.drawn = false;
      this.xgroup = xgroup;
    }

    firstDraw(points) {
      const traces = [];
      for (const [name, p] of Object.entries(points)) {
        this.count(name, p);
        traces.push(...this.newTraces(name, p, traces.length));
      }
      if (this.stages.length) {
        const { strip, shapes } = this.stageFigure();
        this.stripIndex = traces.length;
        traces.push(strip);
        this.layout.shapes = shapes;
      }
      Plotly.newPlot(this.div, traces, this.layout, CONFIG);
      this.drawn = true;
      this.xgroup.join(this);
      this.drawLegend();
      this.updateNote();
    }

    count(name, p) {
      this.totals[name] = (this.totals[name] || 0) + (p.count ?? p.x.length);
      if (this.timeBased && p.x.length) this.xMax = Math.max(this.xMax ?? -Infinity, p.x[p.x.length - 1]);
    }

    stripLayout() {
      return {
        [`yaxis${STRIP_AXIS.slice(1)}`]: { domain: [this.top + 0.03, 1], range: [-0.5, 0.5], fixedrange: true,
                                          showticklabels: false, showgrid: false, zeroline: false },
        uniformtext: { mode: "hide", minsize: 10 },  // a stage's name shows only where it fits: never overprinted
      };
    }

    subplots() { return Object.keys(this.div._fullLayout._plots || { xy: 1 }); }

    color(name) {
      const index = Object.keys(this.traces).indexOf(name);
      return PALETTE[(index < 0 ? Object.keys(this.traces).length : index) % PALETTE.length];
    }

    // points: {name: {x, y, count?}}; count is the full series' length when the server downsampled it.
    extend(points) {
      if (!this.drawn) { this.firstDraw(points); return; }
      const fresh = [], update = { x: [], y: [] }, indices = [];
      for (const [name, p] of Object.entries(points)) {
        this.count(name, p);
        if (name in this.traces) {
          update.x.push(p.x); update.y.push(p.y); indices.push(this.traces[name]);
          if (name in this.smoothed) {
            update.x.push(p.x); update.y.push(this.smoothers[name].push(p.y)); indices.push(this.smoothed[name]);
          }
        } else {
          fresh.push(...this.newTraces(name, p, this.div.data.length + fresh.length));
        }
      }
      if (fresh.length) { Plotly.addTraces(this.div, fresh); this.drawLegend(); }
      if (indices.length) Plotly.extendTraces(this.div, update, indices);
      this.updateNote();
      if (this.stages.length) this.redrawStagesSoon();
    }

    newTraces(name, p, index) {
      const color = this.color(name);
      this.traces[name] = index;
      const raw = { name: plain(this.labelOf(name)), meta: name, x: p.x, y: p.y, mode: "lines", yaxis: this.yaxis(name),
                    line: { color, width: 1.5 } };
      if (HIDDEN_AT_FIRST.has(name)) raw.visible = "legendonly";
      if (name === KIND.PROGRESS) raw.line.dash = "dot";
      if (!(this.smoothing && PER_STEP.test(name))) return [raw];
      // The raw series stays, faint, behind its smoothed copy: the trend reads, the noise is not hidden.
      this.smoothers[name] = new Smoother(this.smoothing.weight());
      this.smoothed[name] = index + 1;
      Object.assign(raw, { opacity: 0.25, hoverinfo: "skip" });
      return [raw, { name: `${raw.name} (smoothed)`, meta: `${name}${SMOOTHED}`, x: p.x,
                     y: this.smoothers[name].push(p.y), mode: "lines", yaxis: raw.yaxis, line: { color, width: 2 } }];
    }

    // A new smoothing weight: every smoothed copy again from its raw series.
    resmooth(weight) {
      const names = Object.keys(this.smoothed);
      if (!names.length || !this.drawn) return;
      const ys = names.map((name) => {
        this.smoothers[name] = new Smoother(weight);
        return this.smoothers[name].push(Array.from(this.div.data[this.traces[name]].y));
      });
      Plotly.restyle(this.div, { y: ys }, names.map((name) => this.smoothed[name]));
    }

    drawLegend() {
      this.legend.replaceChildren(...Object.entries(this.traces).map(([name, index]) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "legend-item";
        button.dataset.meta = name;
        const shown = this.div.data[index].visible !== "legendonly";
        button.setAttribute("aria-pressed", String(shown));
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = this.div.data[index].line.color;
        button.append(swatch, document.createTextNode(this.labelOf(name)));
        button.addEventListener("click", () => this.toggle(name, button));
        return button;
      }));
    }

    toggle(name, button) {
      const show = button.getAttribute("aria-pressed") !== "true";
      button.setAttribute("aria-pressed", String(show));
      const indices = [this.traces[name], ...(name in this.smoothed ? [this.smoothed[name]] : [])];
      Plotly.restyle(this.div, { visible: show ? true : "legendonly" }, indices);
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
      const n = this.units.length, update = {}, gap = 0.05;
      this.units.forEach((u, i) => {
        const top = this.top * (1 - i / n), bottom = this.top * (1 - (i + 1) / n) + (i + 1 < n ? gap : 0);
        update[i === 0 ? "yaxis" : `yaxis${i + 1}`] = {
          domain: [bottom, top], anchor: "x", rangemode: "tozero", title: { text: u === "value" ? "" : UNITS[u] },
        };
      });
      this.div.style.height = `${160 + 120 * n}px`;
      if (!this.drawn) { Object.assign(this.layout, update); return; }
      Plotly.relayout(this.div, update);
      Plotly.Plots.resize(this.div);  // a taller box: Plotly does not notice by itself
    }

    addStages(stages) {
      if (!this.timeBased || !stages.length) return;
      this.stages.push(...stages);
      this.drawStages();
    }

    redrawStagesSoon() {
      if (this.stageTimer) return;
      this.stageTimer = setTimeout(() => { this.stageTimer = null; this.drawStages(); }, STAGE_REDRAW_MS);
    }

    // Each stage spans from its start to the next one's (the last to the latest point): a shaded band over the
    // plot and a bar in the strip, named inside the bar where the name fits and always in the hover.
    stageFigure() {
      const starts = this.stages.map((s) => s.t);
      const ends = starts.slice(1).concat(Math.max(this.xMax ?? starts[starts.length - 1], starts[starts.length - 1]));
      const widths = starts.map((t, i) => Math.max(ends[i] - t, 0));
      const names = this.stages.map((s) => plain(s.name)), colors = starts.map((_, i) => STRIP_FILL[i % 2]);
      const shapes = starts.map((t, i) => ({ type: "rect", xref: "x", yref: "paper", x0: t, x1: ends[i], y0: 0,
                                             y1: this.top, fillcolor: BAND_FILL[i % 2], line: { width: 0 },
                                             layer: "below" }));
      const strip = {
        type: "bar", orientation: "h", meta: "stages", yaxis: STRIP_AXIS, y: starts.map(() => 0), base: starts,
        x: widths, width: 1, text: names, textposition: "inside", insidetextanchor: "middle", textangle: 0,
        textfont: { size: 11, color: "#1f2937" }, cliponaxis: true, showlegend: false,
        marker: { color: colors, line: { width: 1, color: "#ffffff" } },
        hovertemplate: "stage <b>%{text}</b>: %{base:.1f} s + %{x:.1f} s<extra></extra>",
      };
      return { strip, shapes };
    }

    drawStages() {
      if (!this.drawn) return;  // the first draw brings them
      const { strip, shapes } = this.stageFigure();
      if (this.stripIndex !== null) {
        Plotly.update(this.div, { x: [strip.x], base: [strip.base], y: [strip.y], text: [strip.text],
                                  "marker.color": [strip.marker.color] }, { shapes }, [this.stripIndex]);
        return;
      }
      this.stripIndex = this.div.data.length;
      Plotly.addTraces(this.div, strip);
      Plotly.relayout(this.div, { shapes });
    }

    pointCount() {
      if (!this.drawn) return 0;
      return Object.values(this.traces).reduce((sum, index) => sum + this.div.data[index].x.length, 0);
    }

    updateNote() {
      const shown = Object.fromEntries(Object.entries(this.traces).map(([name, i]) => [name, this.div.data[i].x.length]));
      const cut = Object.keys(this.totals).filter((name) => shown[name] < this.totals[name]);
      if (!cut.length) return;
      const sum = (counts) => thousands(cut.reduce((total, n) => total + counts[n], 0));
      const which = cut.length === 1 ? this.labelOf(cut[0]) : `${cut.length} series`;
      this.note.firstChild.textContent = `Showing ${sum(shown)} of ${sum(this.totals)} points (${which}); `;
      this.note.hidden = false;
    }
  }

  function timeLayout(extra) {
    return { margin: { t: 8, r: 64, b: 48, l: 64 }, xaxis: { title: { text: "seconds since the job started" } }, ...extra };
  }

  // A control over the per-step series: the weight of the moving average (0: raw), shown once such a series is.
  function smoothingControl(box) {
    const wrapper = document.createElement("label");
    wrapper.className = "smoothing";
    wrapper.hidden = true;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: "0", max: "0.99", step: "0.01", value: "0.6", id: "smoothing" });
    const shown = document.createElement("output");
    shown.htmlFor = "smoothing";
    shown.textContent = input.value;
    wrapper.append(document.createTextNode("Smoothing of per-step series "), input, shown);
    box.prepend(wrapper);
    return { wrapper, input, shown, weight: () => Number(input.value) };
  }

  // All the page's charts; `put(series)` sends each series to its chart, making charts as their series appear.
  function create({ resources, gpuBox, metricBox, sensitivity, csvUrl }) {
    const bySeconds = new XGroup(), bySteps = new XGroup();
    const smoothing = smoothingControl(metricBox);
    const resourceChart = (parts) => new LiveChart(parts, timeLayout({
      yaxis: { title: { text: "% (CPU, memory, progress)" }, rangemode: "tozero" },
      yaxis2: { title: { text: "MB" }, overlaying: "y", side: "right", rangemode: "tozero" },
    }), { timeBased: true, axisOf: (name) => (unitOf(name) === "percent" ? "y" : "y2"), xgroup: bySeconds });
    const charts = {
      resources: resourceChart(chartBox(resources.parentElement, { title: "Job and host resources", csvUrl, plot: resources })),
      hosts: {},  // a multi-host job's further hosts, by number
      gpus: {},  // by "host:index", the first host's being host 1
      metrics: {},
    };
    const timeCharts = () => [charts.resources, ...Object.values(charts.hosts), ...Object.values(charts.gpus)];
    const bars = { x: [], y: [] };
    const stages = [];
    charts.resources.box.hidden = true;  // shown with its first point: a job without telemetry gets no empty axes

    smoothing.input.addEventListener("input", () => {
      smoothing.shown.textContent = smoothing.input.value;
      Object.values(charts.metrics).forEach((chart) => chart.resmooth(smoothing.weight()));
    });

    function gpuChart(host, index) {
      const key = `${host}:${index}`;
      if (!(key in charts.gpus)) {
        const first = host === 1;
        const parts = chartBox(gpuBox, { id: first ? `gpu${index}-chart` : `host${host}-gpu${index}-chart`,
                                         title: first ? `GPU ${index}` : `Host ${host} · GPU ${index}`, csvUrl });
        parts.div.classList.add("gpu-chart");
        const chart = new LiveChart(parts, timeLayout({}), { timeBased: true, xgroup: bySeconds });
        chart.addStages(stages);
        charts.gpus[key] = chart;
      }
      return charts.gpus[key];
    }

    function hostChart(host) {
      if (!(host in charts.hosts)) {
        const parts = chartBox(gpuBox, { id: `host${host}-chart`, title: `Host ${host}: job and host resources`, csvUrl });
        const chart = resourceChart(parts);
        chart.addStages(stages);
        charts.hosts[host] = chart;
      }
      return charts.hosts[host];
    }

    function metricChart(name) {
      const group = metricGroup(name);
      if (!(group.key in charts.metrics)) {
        const id = `metric-${group.key.replace(/[^a-z0-9]+/gi, "-")}-chart`;
        const parts = chartBox(metricBox, { id, title: group.title, csvUrl });
        // Always the same order, whichever metric came first: losses, accuracies, ratios, the rest.
        const rank = METRIC_GROUPS.includes(group) ? METRIC_GROUPS.indexOf(group) : METRIC_GROUPS.length;
        parts.box.dataset.rank = String(rank);
        const after = [...metricBox.querySelectorAll(".chart-box")].find((b) => Number(b.dataset.rank) > rank);
        if (after) metricBox.insertBefore(parts.box, after);
        const chart = new LiveChart(parts, {
          margin: { t: 8, r: 24, b: 48, l: 64 }, xaxis: { title: { text: "step" } }, yaxis: group.yaxis,
        }, { axisOf: () => "y", labelOf: (n) => n, xgroup: bySteps, smoothing });
        if (group.log) logControl(chart);
        charts.metrics[group.key] = chart;
      }
      return charts.metrics[group.key];
    }

    function logControl(chart) {
      const wrapper = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "log-scale";
      box.addEventListener("change", () => Plotly.relayout(chart.div, { "yaxis.type": box.checked ? "log" : "linear" }));
      wrapper.append(box, document.createTextNode(" log scale"));
      chart.controls.append(wrapper);
    }

    function chartOf(name, kind) {
      if (kind === KIND.METRIC) return metricChart(name);
      const gpu = GPU.exec(name);
      if (gpu) return gpuChart(gpu[1] ? Number(gpu[1]) : 1, Number(gpu[2]));
      const host = HOST.exec(name);
      return host ? hostChart(Number(host[1])) : charts.resources;
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
        chart.box.hidden = false;  // drawn after it shows: a plot drawn hidden gets no size
        chart.extend(points);
      }
      if (Object.values(charts.metrics).some((chart) => Object.keys(chart.smoothed).length)) smoothing.wrapper.hidden = false;
      if (series.sensitivity) drawBars();
      resources.dataset.points = String(charts.resources.pointCount());
    }

    function drawBars() {
      sensitivity.hidden = false;
      Plotly.react(sensitivity, [{ type: "bar", meta: "sensitivity", x: bars.x.map(plain), y: bars.y, marker: { color: "#7c3aed" } }],
        { margin: { t: 20, r: 20, b: 120, l: 60 }, yaxis: { title: { text: "output error when only this layer is quantized" } } },
        CONFIG);
    }

    // Stages in one batch: a reload of a long run draws them all with one relayout per chart.
    function addStages(list) {
      if (!list.length) return;
      stages.push(...list);
      timeCharts().forEach((chart) => chart.addStages(list));
    }

    const pointsDrawn = () => !charts.resources.box.hidden || Object.keys(charts.gpus).length > 0
      || Object.keys(charts.hosts).length > 0
      || Object.keys(charts.metrics).length > 0 || bars.x.length > 0;

    return { put, addStages, stages: () => stages.slice(), pointsDrawn };
  }

  return { create, label };
})();
