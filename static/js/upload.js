// Streams the model file to the API with a progress bar, then opens the new model's page.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const error = document.getElementById("upload-error");

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    bar.hidden = true;
  }

  function describe(body) {
    if (!body || typeof body !== "object") return "The upload failed.";
    return Object.entries(body).map(([field, msgs]) => `${field}: ${[].concat(msgs).join(" ")}`).join("\n");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = new FormData(form);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRFToken", data.get("csrfmiddlewaretoken"));
    xhr.responseType = "json";
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      if (xhr.status === 201) window.location.href = `/models/${xhr.response.id}/`;
      else showError(describe(xhr.response));
    };
    xhr.onerror = () => showError("The connection broke during the upload.");
    xhr.send(data);
  });
})();
