// Streams a file to the API with a progress bar, then opens the new record's page.
// Used by the model and the dataset upload forms (data-api, data-next set on the form; data-rules names the JSON
// of the server's rules for the fields, webapp/pages/upload_rules.py). What those rules can decide is checked
// here, before a byte is sent, so a large file is not uploaded only to be refused; the server checks again.
(function () {
  const form = document.querySelector("form.upload");
  if (!form) return;
  const bar = form.querySelector("progress");
  const summary = form.querySelector(".form-summary");
  const architecture = form.querySelector("#architecture");
  const rules = JSON.parse(document.getElementById(form.dataset.rules).textContent);

  function input(name) {
    return form.elements.namedItem(name);
  }

  // Each error goes next to its input, which points at it; what names no input goes to the summary on top.
  function clearErrors() {
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    for (const marked of form.querySelectorAll("[aria-invalid]")) {
      marked.classList.remove("invalid");
      marked.removeAttribute("aria-invalid");
      marked.removeAttribute("aria-describedby");
    }
    summary.replaceChildren();
    summary.hidden = true;
  }

  function fieldError(element, text) {
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${element.id || element.name}_error`;
    error.textContent = text;
    (element.closest("label") || element).after(error);
    element.classList.add("invalid");
    element.setAttribute("aria-invalid", "true");
    element.setAttribute("aria-describedby", error.id);
  }

  function summaryLine(text) {
    const line = document.createElement("p");
    line.textContent = text;
    summary.append(line);
    summary.hidden = false;
  }

  // As webapp/pages/refusals.py writes them: a first word with digits is a name ("fp16") and stays as written.
  function sentence(text) {
    return /^[A-Za-z]+(\s|$)/.test(text) ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  // "architecture_config.depth" is the depth input of the chosen architecture's settings; "options.image_size"
  // is part of the options box.
  function inputFor(key) {
    const [head, ...rest] = key.split(".");
    if (head === "architecture_config" && rest.length && architecture) {
      return input(`arch-${architecture.value}-${rest.join(".")}`) || architecture;
    }
    if (head === "architecture_config") return architecture;
    const element = input(head);
    return element instanceof Element ? element : null;
  }

  function showErrors(errors) {
    clearErrors();
    const lines = [];
    for (const [key, messages] of Object.entries(errors)) {
      const element = key === "detail" ? null : inputFor(key);
      const texts = [].concat(messages).map(String);
      const setting = key.includes(".") ? `${key.split(".").slice(1).join(" ").replaceAll("_", " ")}: ` : "";
      if (element) fieldError(element, sentence(setting + texts.join(" ")));
      else lines.push(key === "detail" ? texts.join(" ") : `${sentence(key.replaceAll("_", " "))}: ${texts.join(" ")}`);
    }
    if (Object.keys(errors).length > lines.length) lines.push("Some fields need a change: each says why next to it.");
    lines.forEach(summaryLine);
    bar.hidden = true;
    const first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  }

  function extensionOf(name) {
    const dot = name.lastIndexOf(".");
    return dot > 0 ? name.slice(dot).toLowerCase() : "";
  }

  function fileErrors(file, extensions, what) {
    if (!file) return `Choose ${what} to upload.`;
    if (!extensions.includes(extensionOf(file.name))) {
      return `${file.name} is not ${what} Slimforge reads: give a file ending in ${extensions.join(", ")}.`;
    }
    if (file.size === 0) return "The file is empty.";
    if (file.size > rules.max_bytes) {
      return `The file is larger than the ${Math.floor(rules.max_bytes / (1024 * 1024))} MB limit.`;
    }
    return "";
  }

  // optimizers/shapes.py's parse_input_shape, with its pattern and limits.
  function shapeError(text) {
    const limits = rules.input_shape;
    if (!new RegExp(`^(?:${limits.pattern})$`).test(text)) {
      return `The input shape must be comma-separated positive integers, e.g. 1,3,32,32; got "${text}".`;
    }
    const dims = text.split(",").map((part) => Number(part.trim()));
    if (dims.length > limits.max_dims) {
      return `The input shape must have 1 to ${limits.max_dims} dimensions; got ${dims.length}.`;
    }
    for (const [position, size] of dims.entries()) {
      if (size < 1) return `Input shape dimension ${position} must be at least 1; got ${size}.`;
      if (size > limits.max_dim_size) {
        return `Input shape dimension ${position} must be at most ${limits.max_dim_size}; got ${size}.`;
      }
    }
    const elements = dims.reduce((product, size) => product * size, 1);
    if (elements > limits.max_elements) {
      return `The input shape has ${elements.toLocaleString("en")} elements; the limit is `
        + `${limits.max_elements.toLocaleString("en")} (use a batch of 1 and the model's real input size).`;
    }
    return "";
  }

  function checkModel() {
    const errors = {};
    const fileError = fileErrors(input("file").files[0], rules.extensions, "a model file");
    if (fileError) errors.file = fileError;
    if (!input("name").value.trim()) errors.name = "Give the model a name.";
    const shape = input("input_shape").value;
    const fromArchitecture = architecture && architecture.value && !shape.trim();
    if (!fromArchitecture) {
      const error = shapeError(shape);
      if (error) errors.input_shape = error;
      if (!rules.dtypes.includes(input("input_dtype").value)) {
        errors.input_dtype = `The input dtype must be one of ${rules.dtypes.join(", ")}.`;
      }
    }
    return errors;
  }

  function checkDataset() {
    const errors = {};
    if (!input("name").value.trim()) errors.name = "Give the dataset a name.";
    const extensions = rules.extensions[input("kind").value];
    if (extensions) {
      const error = fileErrors(input("file").files[0], extensions, "a file of this kind");
      if (error) errors.file = error;
    }
    const options = input("options").value.trim();
    if (options) {
      let parsed = null;
      try { parsed = JSON.parse(options); } catch (_) { parsed = null; }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        errors.options = 'The options must be a JSON object, e.g. {"image_size": 32}.';
      }
    }
    return errors;
  }

  // The chosen architecture's settings travel as one JSON object, as the API takes them.
  function architectureConfig() {
    const fieldset = form.querySelector(`fieldset[data-architecture="${architecture.value}"]`);
    const config = {};
    for (const element of fieldset.querySelectorAll("input, select")) {
      const key = element.name.split("-").slice(2).join("-");
      if (element.type === "checkbox") config[key] = element.checked;
      else if (element.type === "number") config[key] = Number(element.value);
      else config[key] = element.value;
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
    const refused = input("input_shape") ? checkModel() : checkDataset();
    if (Object.keys(refused).length) {
      showErrors(refused);
      return;
    }
    clearErrors();
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
      else if (xhr.response && typeof xhr.response === "object") showErrors(xhr.response);
      else showErrors({ detail: xhr.status === 413 ? "The file is over the upload limit." : "The upload failed." });
    };
    xhr.onerror = () => showErrors({ detail: "The connection broke during the upload." });
    xhr.send(data);
  });
})();
