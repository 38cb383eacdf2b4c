// The Workers table redraws itself from /api/workers/ every 2 s. Text goes in through textContent only:
// worker and GPU names come from the machines, not from this page.
(function () {
  const table = document.getElementById("workers");
  if (!table) return;
  const body = table.tBodies[0];
  const problem = document.getElementById("workers-refresh");
  const REFRESH_MS = 2000;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function lines(cell, parts) {
    parts.forEach((part, i) => {
      if (i) cell.appendChild(document.createElement("br"));
      cell.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    return cell;
  }

  // The same steps as webapp.selectors.worker_info.seconds_ago.
  function ago(seconds) {
    const s = Math.floor(seconds);
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
      if (s >= size) return `${Math.floor(s / size)} ${unit} ago`;
    }
    return `${s} s ago`;
  }

  const round = (value, digits = 0) => (typeof value === "number" ? value.toFixed(digits) : "?");

  function nameCell(w) {
    const parts = [el("strong", w.name), el("small", `${w.host} · pid ${w.pid}`, "hint"),
                   el("small", `sandbox: ${w.isolation || "not reported"}`,
                      `${(w.isolation || "").startsWith("none") ? "error" : "hint"} isolation`)];
    // SLIMFORGE_WORKER_HOST_ADDRESS: the worker takes part in multi-host jobs, reached at this address.
    const address = (w.load || {}).host_address;
    if (address) parts.push(el("small", `multi-host at ${address}: those jobs run with the host network`, "hint multi-host"));
    return lines(el("td"), parts);
  }

  function devicesCell(w) {
    const cell = el("td", undefined, "devices");
    if (!w.devices.length) return lines(cell, ["none (CPU only)"]);
    return lines(cell, w.devices.map((d) => `GPU ${d.index}: ${d.name} (${round(d.memory_mb)} MB)`));
  }

  function loadCell(w) {
    const cell = el("td", undefined, "load");
    const l = w.load || {};
    if (!Object.keys(l).length) return lines(cell, ["—"]);
    const total = l.memory_total_mb ? ` of ${Math.round(l.memory_total_mb).toLocaleString("en")} MB` : "";
    return lines(cell, [`CPU ${round(l.cpu_percent)}% of ${l.cpu_count} · RAM ${round(l.memory_percent)}%${total}`,
                        `load ${round(l.loadavg_1m, 2)} · worker ${round(l.rss_mb)} MB`]);
  }

  function jobCell(w) {
    const cell = el("td", undefined, "job");
    const job = w.current_job;
    if (job && job.id !== undefined) {
      const link = el("a", `${job.recipe} #${job.id}`);
      link.href = job.url;
      // A further host of a multi-host job: the job runs on another worker, with this one's devices.
      if (job.lends) cell.append("lends its devices to ");
      cell.append(link, ` · ${job.model} · ${Math.round(job.progress * 100)}%`);
    } else if (job) {
      cell.textContent = "busy (another user's job)";
    } else {
      cell.textContent = w.state === "online" ? "idle" : "—";
    }
    return cell;
  }

  function row(w) {
    const tr = el("tr");
    tr.dataset.worker = w.name;
    const state = el("td");
    state.appendChild(el("span", w.state, `status ${w.state}`));
    tr.append(nameCell(w), state, el("td", ago(w.seconds_since_heartbeat), "heartbeat"),
              el("td", w.queues.join(", ") || "—"), devicesCell(w), loadCell(w), jobCell(w));
    return tr;
  }

  function emptyRow() {
    const tr = el("tr", undefined, "empty");
    const td = el("td", "No worker has reported yet.", "hint");
    td.colSpan = 7;
    tr.appendChild(td);
    return tr;
  }

  function showProblem(text) {
    problem.hidden = !text;
    problem.textContent = text || "";
  }

  async function refresh() {
    try {
      const response = await fetch(table.dataset.api, { headers: { Accept: "application/json" } });
      if (!response.ok) return showProblem(`Could not refresh (HTTP ${response.status}).`);
      const workers = await response.json();
      body.replaceChildren(...(workers.length ? workers.map(row) : [emptyRow()]));
      showProblem("");
    } catch (error) {
      showProblem("Could not refresh: the server did not answer.");
    }
  }

  setInterval(refresh, REFRESH_MS);
})();
