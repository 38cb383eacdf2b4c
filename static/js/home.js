// The home page's first-run steps: while a worker inspects the model or imports the dataset a step waits on, ask
// the API every second, and reload when one is done so the next step shows its button.
(function () {
  const waiting = [...document.querySelectorAll("[data-pending]")];
  if (!waiting.length) return;
  const timer = setInterval(async () => {
    for (const item of waiting) {
      const response = await fetch(item.dataset.pending, { headers: { Accept: "application/json" } });
      if (!response.ok) continue;
      const record = await response.json();
      if (record.status !== "pending") {
        clearInterval(timer);
        window.location.reload();
        return;
      }
    }
  }, 1000);
})();
