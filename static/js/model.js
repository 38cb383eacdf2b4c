// While a worker inspects the model, ask the API every second; reload the page when it is done.
(function () {
  const card = document.getElementById("model");
  if (!card || card.dataset.status !== "pending") return;
  const timer = setInterval(async () => {
    const response = await fetch(card.dataset.api, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const model = await response.json();
    if (model.status !== "pending") {
      clearInterval(timer);
      window.location.reload();
    }
  }, 1000);
})();
