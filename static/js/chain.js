// The chain page follows its steps: it asks the API every two seconds while the chain runs, updates each step's
// status, progress, stage and links, and reloads once the chain has ended (to show the comparison and resume form).
(function () {
  const card = document.getElementById("chain");
  if (!card) return;
  const { statuses } = window.SlimforgeEvents;
  const statusBadge = document.getElementById("chain-status");
  if (statusBadge.textContent.trim() !== statuses.RUNNING) return;

  function link(href, text) {
    const anchor = document.createElement("a");
    anchor.href = href;
    anchor.textContent = text;
    return anchor;
  }

  function badge(status) {
    const span = document.createElement("span");
    span.className = `status ${status}`;
    span.textContent = status;
    return span;
  }

  function showStep(step) {
    const row = card.querySelector(`tr[data-index="${step.index}"]`);
    if (!row) return;
    const field = (name) => row.querySelector(`[data-field="${name}"]`);
    field("status").className = `status ${step.status}`;
    field("status").textContent = step.status;
    const experiment = step.experiment || {};
    field("error").textContent = experiment.error || "";
    field("progress").value = experiment.progress || 0;
    field("stage").textContent = step.status === statuses.RUNNING ? experiment.stage || "" : "";
    if (step.experiment) {
      const runs = step.runs > 1 ? ` (${step.runs} runs)` : "";
      field("experiment").replaceChildren(link(`/experiments/${experiment.id}/`, `#${experiment.id}`), runs);
    }
    if (step.output_model) {
      const output = step.output_model;
      field("output").replaceChildren(link(`/models/${output.id}/`, output.name), " ", badge(output.status));
    }
  }

  const timer = setInterval(async () => {
    const response = await fetch(card.dataset.api, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const chain = await response.json();
    chain.steps.forEach(showStep);
    if (chain.status !== statuses.RUNNING) {
      clearInterval(timer);
      window.location.reload();
    }
  }, 2000);
})();
