// The experiment list: rows that are not finished ask the API for their status every 2 s (stopping once all
// are finished), and the ticked rows go to the compare page as ?ids=1,2,3. The result columns the user hides
// stay hidden on the next visit (localStorage).
(function () {
  const { statuses: STATUS, finished: FINISHED } = SlimforgeEvents;
  const POLL_MS = 2000;
  const table = document.getElementById("experiment-table");
  const form = document.getElementById("compare-form");

  function unfinishedRows() {
    return [...table.querySelectorAll("tbody tr")].filter((row) => !FINISHED.includes(row.dataset.status));
  }

  function show(row, experiment) {
    row.dataset.status = experiment.status;
    if (FINISHED.includes(experiment.status)) row.querySelector("[data-role=cancel]")?.remove();
    const badge = row.querySelector("[data-role=status]");
    badge.textContent = experiment.status;
    badge.className = `status ${experiment.status}`;
    row.querySelector("[data-role=progress]").value = experiment.status === STATUS.SUCCEEDED ? 1 : experiment.progress;
    row.querySelector("[data-role=stage]").textContent = experiment.stage || "";
    for (const [key, value] of Object.entries(experiment.results || {})) {
      const cell = row.querySelector(`td[data-column="${key}"]`);
      if (cell) showResult(cell, key, value);
    }
  }

  // The same text and verdict as the server's first draw (webapp.selectors.results.result_cells).
  const LEVEL = { size_ratio: 1, latency_ratio: 1, accuracy_delta: 0 };
  const LOWER_IS_BETTER = { size_ratio: true, latency_ratio: true, accuracy_delta: false };
  function showResult(cell, key, value) {
    cell.classList.remove("better", "worse");
    if (value === null || value === undefined) { cell.textContent = "—"; return; }
    if (key === "accuracy_delta") cell.textContent = `${value >= 0 ? "+" : ""}${value.toFixed(2)} pts`;
    else cell.textContent = key === "energy" ? `${value.toFixed(2)} J` : `${value.toFixed(2)}×`;
    const rounded = Math.round(value * 100) / 100;
    if (key in LEVEL && rounded !== LEVEL[key]) {
      cell.classList.add((rounded < LEVEL[key]) === LOWER_IS_BETTER[key] ? "better" : "worse");
    }
  }

  const COLUMNS_KEY = "slimforge.experiments.hidden-columns";
  function hiddenColumns() {
    try { return new Set(JSON.parse(localStorage.getItem(COLUMNS_KEY)) || []); } catch { return new Set(); }
  }

  function applyColumns() {
    const hidden = hiddenColumns();
    for (const box of document.querySelectorAll("#column-chooser input[data-column]")) {
      box.checked = !hidden.has(box.dataset.column);
    }
    for (const cell of document.querySelectorAll("#experiment-table [data-column]")) {
      cell.hidden = hidden.has(cell.dataset.column);
    }
  }

  const chooser = document.getElementById("column-chooser");
  if (chooser) {
    chooser.addEventListener("change", (event) => {
      const hidden = hiddenColumns();
      if (event.target.checked) hidden.delete(event.target.dataset.column);
      else hidden.add(event.target.dataset.column);
      localStorage.setItem(COLUMNS_KEY, JSON.stringify([...hidden]));
      applyColumns();
    });
    applyColumns();
  }

  async function poll() {
    const rows = unfinishedRows();
    if (!rows.length) { table.dataset.polling = "done"; return; }
    const ids = rows.map((row) => row.dataset.id).join(",");
    try {
      const response = await fetch(`${table.dataset.api}?ids=${ids}&limit=${rows.length}`,
        { headers: { Accept: "application/json" } });
      if (response.ok) {
        const byId = Object.fromEntries((await response.json()).results.map((e) => [String(e.id), e]));
        for (const row of rows) if (byId[row.dataset.id]) show(row, byId[row.dataset.id]);
      }
    } finally {
      setTimeout(poll, POLL_MS);  // a failed request (server restarting) is simply tried again
    }
  }

  function ticked() {
    return [...document.querySelectorAll("input[name=ids][form=compare-form]:checked")].map((box) => box.value);
  }

  function updateCompareButton() {
    const ids = ticked();
    document.getElementById("compare-button").disabled = ids.length === 0;
    const deleteButton = document.getElementById("delete-button");
    if (deleteButton) deleteButton.disabled = ids.length === 0;
    document.getElementById("selected-count").textContent = ids.length
      ? `${ids.length} selected` : "Tick experiments to compare their reports and a Pareto chart.";
  }

  if (table) {
    table.dataset.polling = "on";
    poll();
  }
  if (form) {
    document.addEventListener("change", (event) => { if (event.target.name === "ids") updateCompareButton(); });
    form.addEventListener("submit", (event) => {
      event.preventDefault();  // the short, shareable form of the URL: ?ids=1,2,3 rather than ids=1&ids=2&ids=3
      window.location.assign(`${form.action}?ids=${ticked().join(",")}`);
    });
    updateCompareButton();
  }
  const deleteForm = document.getElementById("delete-form");
  if (deleteForm) {
    // The boxes belong to the compare form; the ticked ids go with this one too (confirm.js asks first).
    deleteForm.addEventListener("submit", () => {
      deleteForm.querySelectorAll("input[name=ids]").forEach((input) => input.remove());
      for (const id of ticked()) {
        const input = Object.assign(document.createElement("input"), { type: "hidden", name: "ids", value: id });
        deleteForm.append(input);
      }
    });
  }
})();
