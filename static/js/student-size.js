// The distill form's student, sized before anything runs: its parameters and their ratio to the teacher's,
// asked of the server (which counts them from the architecture settings) whenever a setting changes.
(function () {
  const out = document.getElementById("student-size");
  if (!out) return;
  const form = document.getElementById("experiment-form");
  const fieldset = out.closest("fieldset");
  let timer = null, asked = 0;

  async function update() {
    if (fieldset.disabled) return;
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (key.startsWith("distill-")) query.append(key, value);
    const mine = ++asked;
    const response = await fetch(`${out.dataset.url}?${query}`, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (mine !== asked) return;  // a later change has been asked about since
    out.classList.toggle("error", !response.ok);
    if (!response.ok) { out.textContent = `Student: ${body.error}`; return; }
    if (body.reason) { out.textContent = `Student size unknown: ${body.reason}.`; return; }
    const ratio = body.ratio === null ? "" : `, ${body.ratio.toFixed(3)}× the teacher's ` +
      `${body.teacher_params.toLocaleString("en")} (${(100 * body.ratio).toFixed(1)}%)`;
    out.textContent = `Student: ${body.student}, ${body.student_params.toLocaleString("en")} parameters${ratio}.`;
  }

  function soon() { clearTimeout(timer); timer = setTimeout(update, 250); }
  fieldset.addEventListener("input", soon);
  fieldset.addEventListener("change", soon);
  document.getElementById("recipe").addEventListener("change", soon);
  update();
})();
