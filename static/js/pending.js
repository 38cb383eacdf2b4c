// While a worker inspects a model or imports a dataset, ask the API every second; reload when it is done. The
// record's page marks its card (data-status, data-api); the home page marks each step that waits (data-pending).
(function () {
  const card = document.getElementById("model") || document.getElementById("record");
  const urls = [...document.querySelectorAll("[data-pending]")].map((item) => item.dataset.pending);
  if (card && card.dataset.status === "pending") urls.push(card.dataset.api);
  if (!urls.length) return;
  const timer = setInterval(async () => {
    for (const url of urls) {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) continue;
      if ((await response.json()).status !== "pending") {
        clearInterval(timer);
        window.location.reload();
        return;
      }
    }
  }, 1000);
})();
