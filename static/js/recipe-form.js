// Shows the chosen recipe's settings; the others are disabled so they are not posted.
(function () {
  const select = document.getElementById("recipe");
  if (!select) return;
  select.addEventListener("change", () => {
    for (const fieldset of document.querySelectorAll("fieldset.recipe")) {
      const chosen = fieldset.dataset.recipe === select.value;
      fieldset.hidden = !chosen;
      fieldset.disabled = !chosen;
    }
  });
})();
