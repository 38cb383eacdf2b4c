// Forms that destroy something ask first: a form with data-confirm="question" submits only when the user agrees.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
}, true);
