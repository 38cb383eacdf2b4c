// The event record's names (kinds, experiment statuses), as optimizers/events.py defines them. Every page embeds
// them as JSON (templates/base.html), so the scripts never spell a kind or a status themselves.
window.SlimforgeEvents = Object.freeze(JSON.parse(document.getElementById("event-contract").textContent));
