// Streams a file to the API with a progress bar, then opens the new record's page.
// Used by the model and the dataset upload forms (data-api, data-next set on the form).
(function () {
  const form = document.querySelector("form.upload");
  if (!form) return;
  const bar = form.querySelector("progress");
  const error = form.querySelector(".error");
  const architecture = form.querySelector("#architecture");

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    bar.hidden = true;
  }

  function describe(body) {
    if (!body || typeof body !== "object") return "The upload failed.";
    return Object.entries(body).map(([field, msgs]) => `${field}: ${[].concat(msgs).join(" ")}`).join("\n");
  }

  // The chosen architecture's settings travel as one JSON object, as the API takes them.
  function architectureConfig() {
    const fieldset = form.querySelector(`fieldset[data-architecture="${architecture.value}"]`);
    const config = {};
    for (const input of fieldset.querySelectorAll("input, select")) {
      const key = input.name.split("-").slice(2).join("-");
      if (input.type === "checkbox") config[key] = input.checked;
      else if (input.type === "number") config[key] = Number(input.value);
      else config[key] = input.value;
    }
    return JSON.stringify(config);
  }

  if (architecture) {
    architecture.addEventListener("change", () => {
      for (const fieldset of form.querySelectorAll("fieldset.architecture")) {
        fieldset.hidden = fieldset.dataset.architecture !== architecture.value;
      }
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData();
    for (const [key, value] of new FormData(form)) {
      if (!key.startsWith("arch-")) data.append(key, value);
    }
    if (architecture && architecture.value) data.set("architecture_config", architectureConfig());
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRFToken", data.get("csrfmiddlewaretoken"));
    xhr.responseType = "json";
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      if (xhr.status === 201) window.location.href = `${form.dataset.next}${xhr.response.id}/`;
      else showError(describe(xhr.response));
    };
    xhr.onerror = () => showError("The connection broke during the upload.");
    xhr.send(data);
  });
})();
