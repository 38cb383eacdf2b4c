// The experiment page: the charts' first draw from the series API (long lines downsampled by the server), then
// a WebSocket that resumes after the last seq drawn and extends the charts live: no gap, no duplicate.
// Which events are points mirrors webapp/selectors/series.py, so a live page and a reloaded one draw the same series.
(function () {
  const card = document.getElementById("experiment");
  if (!card) return;
  const chart = document.getElementById("chart");
  const { kinds: KIND, statuses: STATUS, finished: FINISHED } = SlimforgeEvents;
  const SENSITIVITY = "sensitivity/";
  const charts = SlimforgeCharts.create({
    resources: chart, gpuBox: document.getElementById("gpu-charts"), metricBox: document.getElementById("metric-charts"),
    sensitivity: document.getElementById("sensitivity"), csvUrl: card.dataset.csv,
  });
  let lastSeq = 0;
  let t0 = null;      // the first event's unix time: time-based x are seconds since it
  let stage = null;   // the stage of the last marker drawn
  let finished = FINISHED.includes(document.getElementById("exp-status").textContent.trim());

  const since = (t) => Math.round((t - t0) * 1000) / 1000;
  const isNumber = (v) => typeof v === "number";

  function pointOf(e) {
    if (!isNumber(e.t)) return null;
    if ((e.kind === KIND.RESOURCE || e.kind === KIND.METRIC) && typeof e.name === "string" && isNumber(e.value)) {
      if (e.kind === KIND.RESOURCE) return { series: e.name, kind: KIND.RESOURCE, x: since(e.t), y: e.value };
      if (e.name.startsWith(SENSITIVITY)) return { series: "sensitivity", kind: "bar", x: e.name.slice(SENSITIVITY.length), y: e.value };
      return { series: e.name, kind: KIND.METRIC, x: isNumber(e.step) ? e.step : e.seq, y: e.value };
    }
    if (e.kind === KIND.PROGRESS && isNumber(e.done) && isNumber(e.total) && e.total !== 0) {
      return { series: KIND.PROGRESS, kind: KIND.PROGRESS, x: since(e.t), y: (100 * e.done) / e.total };
    }
    return null;
  }

  // A stage begins when its name changes, whether a stage event or a drawn progress event says so.
  function markStage(e, point) {
    const name = e.kind === KIND.STAGE ? e.name : (point && point.kind === KIND.PROGRESS ? e.stage : null);
    if (!name || name === stage || !isNumber(e.t)) return;
    stage = name;
    charts.addStages([{ t: since(e.t), name, seq: e.seq }]);
  }

  // The stages with when each began and how long it took: the next one's start, or the latest event for the last.
  let tLast = 0;
  function drawStageTimes() {
    const stages = charts.stages(), table = document.getElementById("stage-times");
    if (!stages.length) return;
    const body = table.tBodies[0];
    body.replaceChildren(...stages.map((s, i) => {
      const row = document.createElement("tr");
      const end = i + 1 < stages.length ? stages[i + 1].t : Math.max(tLast, s.t);
      const open = i + 1 === stages.length && !finished;
      [s.name, `${s.t.toFixed(1)} s`, `${(end - s.t).toFixed(1)} s${open ? " so far" : ""}`].forEach((text) => {
        row.insertCell().textContent = text;
      });
      return row;
    }));
    table.hidden = false;
  }

  function setLastSeq(seq) {
    lastSeq = seq;
    chart.dataset.lastSeq = String(seq);
  }

  function apply(events) {
    const fresh = events.filter((e) => e.seq > lastSeq);  // the server sends no duplicate; stay safe anyway
    if (!fresh.length) return;
    setLastSeq(fresh[fresh.length - 1].seq);
    const series = {};
    for (const e of fresh) {
      if (t0 === null && isNumber(e.t)) t0 = e.t;
      if (isNumber(e.t)) tLast = Math.max(tLast, since(e.t));
      const point = pointOf(e);
      if (point) {
        const s = (series[point.series] = series[point.series] || { kind: point.kind, x: [], y: [] });
        s.x.push(point.x); s.y.push(point.y);
      }
      markStage(e, point);
      showState(e);
    }
    charts.put(series);
    drawStageTimes();
    showEmpty();
  }

  // Until a job sends its first point, a sentence instead of empty axes; a finished job may never send one.
  function showEmpty() {
    const note = document.getElementById("live-empty");
    note.hidden = charts.pointsDrawn();
    note.textContent = finished
      ? "This job recorded no telemetry or metrics: it ended before the first sample."
      : "Waiting for the job's first telemetry sample…";
  }

  function showState(e) {
    if (e.kind === KIND.PROGRESS && e.total) {
      document.getElementById("exp-progress").value = e.done / e.total;
      if (e.stage) document.getElementById("exp-stage").textContent = e.stage;
    } else if (e.kind === KIND.STAGE) {
      document.getElementById("exp-stage").textContent = e.name;
    } else if (e.kind === KIND.STATUS) {
      setStatus(e.status, e.error, e.note);
    }
  }

  function setStatus(status, error, note) {
    const badge = document.getElementById("exp-status");
    badge.textContent = status;
    badge.className = `status ${status}`;
    // A finished bar is coloured by its outcome: a failed job must not look as if it were still going.
    document.getElementById("exp-progress").dataset.status = status;
    if (error) {
      document.getElementById("exp-error").textContent = error;
      document.getElementById("exp-outcome-title").textContent = status === STATUS.CANCELLED ? "Cancelled" : "Failed";
      document.getElementById("exp-outcome").hidden = false;
    }
    if (FINISHED.includes(status)) document.querySelector("#experiment [data-role=cancel]")?.remove();
    if (status === STATUS.RUNNING && note && note.startsWith("attempt")) {  // a lost worker's job, going on
      const attempt = document.getElementById("exp-attempt");
      attempt.textContent = `· ${note}`;
      attempt.hidden = false;
    }
    if (status === STATUS.CANCELLED && note) {  // "cancelled by carol": who stopped it, in place of "stopping"
      const state = document.getElementById("exp-cancel-state");
      state.textContent = `${note.charAt(0).toUpperCase()}${note.slice(1)}.`;
      state.hidden = false;
    }
    if (FINISHED.includes(status) && !finished) { finished = true; drawStageTimes(); showEmpty(); SlimforgeReport.load(card.dataset.api); }
  }

  // The server's view up to its last_seq: what the page shows before the socket brings the rest.
  async function firstDraw() {
    const response = await fetch(card.dataset.series, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`the series answered HTTP ${response.status}`);
    const data = await response.json();
    t0 = data.t0;
    charts.addStages(data.stages);  // first: each chart then draws its points and stages in one go
    charts.put(data.series);
    showEmpty();
    tLast = Math.max(0, ...Object.values(data.series).filter((s) => s.kind !== KIND.METRIC && s.kind !== "bar")
      .map((s) => (s.x.length ? s.x[s.x.length - 1] : 0)));
    drawStageTimes();
    if (data.stages.length) stage = data.stages[data.stages.length - 1].name;
    const progress = data.series[KIND.PROGRESS];
    if (progress) document.getElementById("exp-progress").value = progress.y[progress.y.length - 1] / 100;
    if (stage) document.getElementById("exp-stage").textContent = stage;
    if (data.status) setStatus(data.status.status, data.status.error);
    setLastSeq(data.last_seq);
    chart.dataset.firstDrawMs = String(Math.round(performance.now()));  // bench/charts.py reads it
  }

  let retry = 500;
  function later(fn) {
    setTimeout(fn, retry);
    retry = Math.min(retry * 2, 5000);
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/experiments/${card.dataset.id}/?after=${lastSeq}`);
    socket.onopen = () => { retry = 500; };
    socket.onmessage = (message) => apply(JSON.parse(message.data).events || []);
    socket.onclose = () => {
      if (finished && lastSeq > 0) return;
      later(connect);  // reconnect and resume from lastSeq: no gap, no duplicate
    };
    window.slimforgeSocket = socket;  // tests close it to check the resume
  }

  function start() {
    firstDraw().then(connect, (error) => {
      console.warn("first draw failed, trying again", error);
      later(start);
    });
  }

  start();
  if (finished) SlimforgeReport.load(card.dataset.api);
})();
