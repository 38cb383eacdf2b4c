// While a worker inspects a model or imports a dataset, ask the API every second; reload when it is done.
(function () {
  const card = document.getElementById("model") || document.getElementById("record");
  if (!card || card.dataset.status !== "pending") return;
  const timer = setInterval(async () => {
    const response = await fetch(card.dataset.api, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const record = await response.json();
    if (record.status !== "pending") {
      clearInterval(timer);
      window.location.reload();
    }
  }, 1000);
})();
