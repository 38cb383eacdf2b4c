// The experiment page: a WebSocket that resumes from the last seq it has, a Plotly chart that grows,
// and the before/after report when the job ends.
(function () {
  const card = document.getElementById("experiment");
  if (!card) return;
  const chart = document.getElementById("chart");
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const SERIES = { "job/cpu_percent": 0, "job/rss_mb": 1, progress: 2 };
  let lastSeq = 0;
  let t0 = null;
  let finished = FINISHED.includes(document.getElementById("exp-status").textContent.trim());
  let points = 0;

  Plotly.newPlot(chart, [
    { name: "CPU %", x: [], y: [], mode: "lines+markers", line: { color: "#2563eb" } },
    { name: "RSS MB", x: [], y: [], mode: "lines+markers", yaxis: "y2", line: { color: "#d97706" } },
    { name: "progress %", x: [], y: [], mode: "lines+markers", line: { color: "#059669", dash: "dot" } },
  ], {
    margin: { t: 20, r: 60, b: 40, l: 50 }, legend: { orientation: "h" },
    xaxis: { title: { text: "seconds" } }, yaxis: { title: { text: "% (CPU, progress)" }, rangemode: "tozero" },
    yaxis2: { title: { text: "MB" }, overlaying: "y", side: "right", rangemode: "tozero" },
  }, { responsive: true, displaylogo: false });

  function plot(events) {
    const batch = { x: [[], [], []], y: [[], [], []] };
    for (const e of events) {
      if (t0 === null) t0 = e.t;
      let index = null, value = null;
      if (e.kind === "resource" && e.name in SERIES) { index = SERIES[e.name]; value = e.value; }
      if (e.kind === "progress" && e.total) { index = SERIES.progress; value = (100 * e.done) / e.total; }
      if (index === null) continue;
      batch.x[index].push(e.t - t0);
      batch.y[index].push(value);
      points += 1;
    }
    if (points === 0) return;
    Plotly.extendTraces(chart, batch, [0, 1, 2]);
    chart.dataset.points = String(points);
  }

  // Recipe metrics (fine-tune losses and accuracies): one line per name, a trace added on its first point.
  const metricsChart = document.getElementById("metrics");
  const metricTraces = {};
  const sensitivity = { x: [], y: [] };

  function plotMetrics(events) {
    const batch = {};
    for (const e of events) {
      if (e.kind !== "metric") continue;
      if (e.name.startsWith("sensitivity/")) {
        sensitivity.x.push(e.name.slice("sensitivity/".length));
        sensitivity.y.push(e.value);
        continue;
      }
      (batch[e.name] = batch[e.name] || { x: [], y: [] }).x.push(e.step);
      batch[e.name].y.push(e.value);
    }
    for (const [name, points] of Object.entries(batch)) {
      if (!(name in metricTraces)) {
        if (metricsChart.hidden) {
          metricsChart.hidden = false;
          Plotly.Plots.resize(metricsChart);  // drawn while hidden, it has no size yet
        }
        metricTraces[name] = Object.keys(metricTraces).length;
        const accuracy = name.includes("accuracy");
        Plotly.addTraces(metricsChart, { name, x: [], y: [], mode: "lines+markers", yaxis: accuracy ? "y2" : "y" });
      }
      Plotly.extendTraces(metricsChart, { x: [points.x], y: [points.y] }, [metricTraces[name]]);
    }
    if (sensitivity.x.length) {
      const box = document.getElementById("sensitivity");
      box.hidden = false;
      Plotly.react(box, [{ type: "bar", x: sensitivity.x, y: sensitivity.y, marker: { color: "#7c3aed" } }],
        { margin: { t: 20, r: 20, b: 120, l: 60 }, yaxis: { title: { text: "output error when only this layer is quantized" } } },
        { responsive: true, displaylogo: false });
    }
  }

  Plotly.newPlot(metricsChart, [], {
    margin: { t: 20, r: 60, b: 40, l: 50 }, legend: { orientation: "h" }, xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "loss" }, rangemode: "tozero" },
    yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1] },
  }, { responsive: true, displaylogo: false });

  function apply(events) {
    const fresh = events.filter((e) => e.seq > lastSeq);  // the server sends no duplicate; stay safe anyway
    if (!fresh.length) return;
    lastSeq = fresh[fresh.length - 1].seq;
    chart.dataset.lastSeq = String(lastSeq);
    plot(fresh);
    plotMetrics(fresh);
    for (const e of fresh) {
      if (e.kind === "progress" && e.total) {
        document.getElementById("exp-progress").value = e.done / e.total;
        if (e.stage) document.getElementById("exp-stage").textContent = e.stage;
      } else if (e.kind === "stage") {
        document.getElementById("exp-stage").textContent = e.name;
      } else if (e.kind === "status") {
        setStatus(e.status, e.error);
      }
    }
  }

  function setStatus(status, error) {
    const badge = document.getElementById("exp-status");
    badge.textContent = status;
    badge.className = `status ${status}`;
    if (error) {
      const box = document.getElementById("exp-error");
      box.textContent = error;
      box.hidden = false;
    }
    if (FINISHED.includes(status)) { finished = true; loadResults(); }
  }

  function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }
  function fmt(value, digits) {
    if (value === undefined || value === null) return "—";
    return value === Infinity ? "∞ (identical)" : Number(value).toFixed(digits);
  }

  const REPORT_ROWS = [
    ["file size (bytes)", ["size_bytes"], 0], ["parameters", ["params"], 0],
    ["non-zero parameters", ["nonzero_params"], 0], ["MACs per sample", ["macs"], 0],
    ["latency p50, batch 1 (ms)", ["latency_ms", "batch_1", "p50"], 3],
    ["latency p95, batch 1 (ms)", ["latency_ms", "batch_1", "p95"], 3],
    ["latency p50, batch 32 (ms)", ["latency_ms", "batch_32", "p50"], 3],
    ["latency p95, batch 32 (ms)", ["latency_ms", "batch_32", "p95"], 3],
    ["throughput (samples/s)", ["throughput_per_s"], 1], ["peak memory (MB)", ["peak_memory_mb"], 1],
    ["accuracy", ["accuracy"], 4], ["top-1 agreement with the original", ["agreement_top1"], 4],
    ["largest output difference", ["output_error", "max_abs"], 6], ["SQNR (dB)", ["output_error", "sqnr_db"], 1],
    ["energy per 1,000 inferences (J)", ["energy_j_per_1000"], 3],
  ];
  const pick = (obj, path) => path.reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);

  function reportTable(s) {
    const body = document.querySelector("#report tbody");
    body.innerHTML = "";
    for (const [label, path, digits] of REPORT_ROWS) {
      let before = pick(s.before, path), after = pick(s.after, path);
      if (path[1] === "sqnr_db" && pick(s.after, ["output_error", "identical"])) after = Infinity;
      if ((before === undefined || before === null) && (after === undefined || after === null)) continue;
      const row = body.insertRow();
      cell(row, label); cell(row, fmt(before, digits)); cell(row, fmt(after, digits));
      const ratio = typeof before === "number" && typeof after === "number" && before !== 0 ? after / before : null;
      cell(row, ratio === null || path[0] === "output_error" ? "" : `${ratio.toFixed(2)}×`);
    }
    const notes = [s.after.macs_note, s.after.latency_note, s.after.memory_note, s.after.energy_note,
                   s.after.quality_note, ...(s.notes || [])].filter(Boolean);
    document.getElementById("notes").textContent = notes.join(" · ");
    document.getElementById("findings").textContent = findings(s.extras || {});
  }

  // What a recipe found out, in words: the accuracy budget and the layers it kept in float.
  function findings(extras) {
    const lines = [];
    const budget = extras.budget;
    if (budget && budget.metric) {
      const achieved = typeof budget.achieved === "number" ? budget.achieved.toFixed(4) : "—";
      lines.push(`Accuracy budget ${budget.metric} ≥ ${budget.min}: ${budget.met ? "met" : "NOT met"} (achieved ${achieved}).`);
    }
    if (extras.kept_float && extras.kept_float.length) lines.push(`Kept in floating point: ${extras.kept_float.join(", ")}.`);
    return lines.join(" ");
  }

  function artifactList(exp) {
    const list = document.querySelector("#artifacts tbody");
    list.innerHTML = "";
    for (const a of exp.artifacts) {
      const row = list.insertRow();
      const link = document.createElement("a");
      link.href = a.url; link.textContent = a.name; link.className = "artifact"; link.setAttribute("download", a.name);
      row.insertCell().appendChild(link);
      cell(row, `${a.size_bytes} bytes`);
      const code = document.createElement("code"); code.textContent = a.sha256; row.insertCell().appendChild(code);
    }
    const skipped = Object.entries((exp.summary.formats || {}).skipped || {});
    document.getElementById("skipped").textContent =
      skipped.map(([format, reason]) => `${format}: not produced — ${reason}`).join("\n");
  }

  async function loadResults() {
    const response = await fetch(card.dataset.api, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const exp = await response.json();
    if (exp.status === "succeeded") document.getElementById("exp-progress").value = 1;
    const s = exp.summary || {};
    if (!s.before) return;
    document.getElementById("backend").textContent = `Backend: ${s.backend || "—"} · ${s.threads || "?"} thread(s) · ${s.device || s.after.device || "cpu"}`;
    reportTable(s);
    artifactList(exp);
    document.getElementById("results").hidden = false;
  }

  let retry = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/experiments/${card.dataset.id}/?after=${lastSeq}`);
    socket.onopen = () => { retry = 500; };
    socket.onmessage = (message) => apply(JSON.parse(message.data).events || []);
    socket.onclose = () => {
      if (finished && lastSeq > 0) return;
      setTimeout(connect, retry);  // reconnect and resume from lastSeq: no gap, no duplicate
      retry = Math.min(retry * 2, 5000);
    };
    window.slimforgeSocket = socket;  // tests close it to check the resume
  }
  connect();
  if (finished) loadResults();
})();
