// The experiment page's results: the before/after report, what the recipe found and the artifacts,
// drawn from the experiment API once the job has ended.
window.SlimforgeReport = (function () {
  function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }
  function fmt(value, digits) {
    if (value === undefined || value === null) return "—";
    if (digits === "size") return SlimforgeSizes.format(value);
    return value === Infinity ? "∞ (identical)" : Number(value).toFixed(digits);
  }

  // [label, path in the report, digits, which way is better ("lower", "higher" or none), what it means].
  const REPORT_ROWS = [
    ["file size", ["size_bytes"], "size", "lower",
     "Bytes of the model file. The original is weighed in the result's format, so the ratio compares like with like."],
    ["parameters", ["params"], 0, "lower"], ["non-zero parameters", ["nonzero_params"], 0, "lower"],
    ["MACs per sample", ["macs"], 0, "lower", "Multiply-accumulate operations for one sample: the model's compute."],
    ["latency p50, batch 1 (ms)", ["latency_ms", "batch_1", "p50"], 3, "lower"],
    ["latency p95, batch 1 (ms)", ["latency_ms", "batch_1", "p95"], 3, "lower"],
    ["latency p50, batch 32 (ms)", ["latency_ms", "batch_32", "p50"], 3, "lower"],
    ["latency p95, batch 32 (ms)", ["latency_ms", "batch_32", "p95"], 3, "lower"],
    ["throughput (samples/s)", ["throughput_per_s"], 1, "higher"], ["peak memory (MB)", ["peak_memory_mb"], 1, "lower"],
    ["accuracy", ["accuracy"], 4, "higher", "Share of the validation samples classified right (the run's dataset)."],
    ["top-1 agreement with the original", ["agreement_top1"], 4, "higher",
     "Share of inputs on which the model picks the same top class as the original: 1 means every answer is kept."],
    ["mean cosine to the original", ["output_error", "mean_cosine"], 5, null,
     "Per input, the cosine similarity of this model's whole output to the original's (1 = the same direction), " +
     "averaged: how an embedding model is judged."],
    ["largest output difference", ["output_error", "max_abs"], 6, null,
     "The largest absolute difference between any output of this model and the original's, on the same inputs."],
    ["SQNR (dB)", ["output_error", "sqnr_db"], 1, null,
     "Signal-to-quantization-noise ratio of the outputs: 10·log10(power of the original's outputs ÷ power of the " +
     "difference). Higher is closer; 20 dB means the error is a tenth of the signal. A prune or distill changes " +
     "the outputs on purpose, so a low or negative SQNR can sit beside a high top-1 agreement."],
    ["perplexity (validation text)", ["perplexity"], 3, "lower",
     "How surprised the language model is by the validation text's next tokens: exp of the mean cross-entropy. " +
     "Lower is better; a quantized model should stay within a few percent of the original."],
    ["time to first token (ms)", ["generation", "time_to_first_token_ms"], 2, "lower",
     "The prompt's forward pass at batch 1 (the start of the first validation text)."],
    ["tokens per second, batch 1", ["generation", "tokens_per_s", "batch_1"], 1, "higher",
     "Greedy decoding; the saved model recomputes the whole sequence for every new token (no key-value cache)."],
    ["tokens per second, batch 8", ["generation", "tokens_per_s", "batch_8"], 1, "higher"],
    ["energy per 1,000 inferences (J)", ["energy_j_per_1000"], 3, "lower",
     "Whole-GPU energy from NVML's counter over a timed loop, idle draw included; measured on CUDA GPUs only."],
  ];
  const pick = (obj, path) => path.reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);

  // A ratio cell: coloured and worded by which way is better, so colour is never the only sign.
  function ratioCell(row, ratio, better) {
    const td = cell(row, ratio === null ? "" : `${ratio.toFixed(2)}×`);
    if (ratio === null || !better || Math.abs(ratio - 1) < 0.005) return td;
    const good = better === "lower" ? ratio < 1 : ratio > 1;
    td.className = good ? "better" : "worse";
    td.append(` ${good ? "▲ better" : "▼ worse"}`);
    return td;
  }

  function labelCell(row, label, help, footnotes) {
    const td = cell(row, label);
    if (!help) return td;
    footnotes.push([label, help]);
    const mark = document.createElement("sup");
    mark.textContent = String(footnotes.length);
    td.title = help;
    td.append(mark);
    return td;
  }

  function reportTable(s) {
    const body = document.querySelector("#report tbody");
    body.innerHTML = "";
    const footnotes = [];
    for (const [label, path, digits, better, help] of REPORT_ROWS) {
      let before = pick(s.before, path), after = pick(s.after, path);
      if (path[1] === "sqnr_db" && pick(s.after, ["output_error", "identical"])) after = Infinity;
      if ((before === undefined || before === null) && (after === undefined || after === null)) continue;
      const row = body.insertRow();
      row.dataset.key = path.join(".");
      labelCell(row, label, help, footnotes); cell(row, fmt(before, digits)); cell(row, fmt(after, digits));
      const ratio = typeof before === "number" && typeof after === "number" && before !== 0 ? after / before : null;
      ratioCell(row, path[0] === "output_error" ? null : ratio, better);
    }
    const list = document.getElementById("report-footnotes");
    list.replaceChildren(...footnotes.map(([label, help]) => {
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = `${label}: `;
      item.append(name, help);
      return item;
    }));
    const notes = [s.after.macs_note, s.after.latency_note, s.after.memory_note, s.after.energy_note,
                   s.after.quality_note, s.after.perplexity_note, s.after.generation_note,
                   ...(s.notes || [])].filter(Boolean);
    document.getElementById("notes").textContent = notes.join(" · ");
    document.getElementById("findings").textContent = findings(s.extras || {});
  }

  // What a recipe found out, in words: the accuracy budget, the layers it kept in float, its data-parallel scaling.
  function findings(extras) {
    const lines = [];
    const budget = extras.budget;
    if (budget && budget.metric) {
      const achieved = typeof budget.achieved === "number" ? budget.achieved.toFixed(4) : "—";
      lines.push(`Accuracy budget ${budget.metric} ≥ ${budget.min}: ${budget.met ? "met" : "NOT met"} (achieved ${achieved}).`);
    }
    if (extras.kept_float && extras.kept_float.length) lines.push(`Kept in floating point: ${extras.kept_float.join(", ")}.`);
    const ddp = extras.distributed;
    if (ddp) {
      // A multi-host run (Experiment.hosts > 1) says over how many hosts its replicas ran.
      const hosts = typeof ddp.hosts === "number" ? ` on ${ddp.hosts} host${ddp.hosts === 1 ? "" : "s"}` : "";
      lines.push(`Fine-tuned on ${ddp.ranks} data-parallel replicas${hosts} (DDP over ${ddp.backend}); their weights were ` +
                 `compared after each of ${ddp.replica_checks} steps and were identical.`);
      const rates = (ddp.scaling || []).map((entry) => `${entry.ranks} replica${entry.ranks > 1 ? "s" : ""}` +
        (entry.hosts > 1 ? ` on ${entry.hosts} hosts` : "") + ": " +
        `${Math.round(entry.samples_per_s).toLocaleString("en")} samples/s` +
        (entry.ranks > 1 ? ` (scaling efficiency ${entry.efficiency.toFixed(2)})` : ""));
      if (rates.length) lines.push(`Training throughput — ${rates.join("; ")}.`);
    }
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
      cell(row, SlimforgeSizes.format(a.size_bytes));
      const code = document.createElement("code"); code.textContent = a.sha256; row.insertCell().appendChild(code);
    }
    const skipped = Object.entries((exp.summary.formats || {}).skipped || {});
    document.getElementById("skipped").textContent =
      skipped.map(([format, reason]) => `${format}: not produced — ${reason}`).join("\n");
  }

  async function load(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const exp = await response.json();
    if (exp.status === SlimforgeEvents.statuses.SUCCEEDED) document.getElementById("exp-progress").value = 1;
    const s = exp.summary || {};
    if (!s.before) return;
    document.getElementById("backend").textContent = `Backend: ${s.backend || "—"} · ${s.threads || "?"} thread(s) · ${s.device || s.after.device || "cpu"}`;
    document.getElementById("results").hidden = false;  // first: a chart drawn in a hidden box gets no width
    reportTable(s);
    SlimforgePlanChart.draw(document.getElementById("plan-chart"), (s.extras || {}).plan_search);
    artifactList(exp);
  }

  return { load };
})();
